-- Templates merge only with templates of the same number of tokens, so a
-- new template only requires re-merging the tenant's templates of its own
-- length; this column lets the processor load just those.
ALTER TABLE error_templates ADD COLUMN token_count integer NOT NULL DEFAULT 0;
UPDATE error_templates SET token_count = coalesce(array_length(string_to_array(template, ' '), 1), 0);
CREATE INDEX error_templates_length_idx ON error_templates (tenant_id, token_count);
COMMENT ON COLUMN error_templates.token_count IS 'Number of space-separated tokens of the template; merging only compares templates of equal length.';
