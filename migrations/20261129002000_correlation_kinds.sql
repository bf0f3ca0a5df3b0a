-- Induced-error attribution by how a failure points at the edited file
-- (docs/processing.md, "Correlations"). Rows written before keep their old
-- kinds (same_file, any_failure); new rows use the new ones.
ALTER TABLE event_correlations DROP CONSTRAINT IF EXISTS event_correlations_match_kind_check;
ALTER TABLE event_correlations ADD CONSTRAINT event_correlations_match_kind_check
    CHECK (match_kind IN ('error_location', 'mention', 'test_subject', 'context', 'same_file', 'any_failure'));
COMMENT ON TABLE event_correlations IS 'Induced-error attribution: an agent file_edit (cause) and a later failure (effect) that names the edited file. Rows with confidence >= 0.5 are claims (counted by verdicts); lower rows are candidates only.';
COMMENT ON COLUMN event_correlations.match_kind IS 'How the failure points at the file: error_location (where the tool reports the error), mention (named in the error''s context, no location file edited), test_subject (the file the failing test tests), context (named beside the error; candidate only). same_file and any_failure: rows written before 2026-11-29.';
COMMENT ON COLUMN event_correlations.confidence IS 'How likely the edit caused the failure, 0..1; >= 0.5 is a claim, below a candidate (formula in docs/processing.md).';
COMMENT ON COLUMN event_correlations.fixed_by_event_id IS 'The first passing build, test or run after the repairing edit that would have shown the failure again (docs/processing.md), if any.';
