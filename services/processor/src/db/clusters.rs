//! Error clusters: occurrences per template, the template → cluster map,
//! and the `error_clusters` / `error_cluster_sessions` rows derived from
//! them. See the migration `*_cluster_templates.sql` for the model.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Occurrences of one template in one session within a batch.
#[derive(Debug, Clone)]
pub struct TemplateDelta {
    pub tenant: String,
    pub template_id: String,
    pub template: String,
    pub session_id: Uuid,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub sample: String,
}

/// A template's batch totals: text, count, first and last seen, a sample.
type TemplateTotals<'a> = (&'a str, i64, DateTime<Utc>, DateTime<Utc>, &'a str);

/// Serialises cluster maintenance per tenant across processor instances
/// (transaction-scoped advisory locks, taken in a fixed order).
pub async fn lock_tenants(conn: &mut PgConnection, tenants: &[&str]) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<&str> = tenants.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for t in sorted {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('achilles-clusters:' || $1, 0))",
        )
        .bind(t)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Which of `ids` the tenant already has.
pub async fn known_templates(
    conn: &mut PgConnection,
    tenant: &str,
    ids: &[&str],
) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT template_id FROM error_templates WHERE tenant_id = $1 AND template_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The tenant's templates with one of the given token counts: (template
/// id, sample message, cluster id). Merging never crosses lengths, so these
/// are all a new template of such a length can merge with.
pub async fn templates_of_lengths(
    conn: &mut PgConnection,
    tenant: &str,
    token_counts: &[i32],
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT template_id, sample_message, cluster_id FROM error_templates
         WHERE tenant_id = $1 AND token_count = ANY($2) ORDER BY template_id",
    )
    .bind(tenant)
    .bind(token_counts)
    .fetch_all(&mut *conn)
    .await
}

/// Adds occurrences. New templates start as their own cluster; the caller
/// re-merges afterwards.
pub async fn add_template_occurrences(
    conn: &mut PgConnection,
    deltas: &[TemplateDelta],
) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut per: HashMap<(&str, &str), TemplateTotals<'_>> = HashMap::new();
    for d in deltas {
        let e = per
            .entry((d.tenant.as_str(), d.template_id.as_str()))
            .or_insert((
                d.template.as_str(),
                0,
                d.first_seen,
                d.last_seen,
                d.sample.as_str(),
            ));
        e.1 += d.count;
        e.2 = e.2.min(d.first_seen);
        e.3 = e.3.max(d.last_seen);
    }
    let mut rows: Vec<_> = per.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let tenants: Vec<&str> = rows.iter().map(|r| r.0 .0).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.0 .1).collect();
    let templates: Vec<&str> = rows.iter().map(|r| r.1 .0).collect();
    let counts: Vec<i64> = rows.iter().map(|r| r.1 .1).collect();
    let firsts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1 .2).collect();
    let lasts: Vec<DateTime<Utc>> = rows.iter().map(|r| r.1 .3).collect();
    let samples: Vec<&str> = rows.iter().map(|r| r.1 .4).collect();
    sqlx::query(
        "INSERT INTO error_templates (tenant_id, template_id, template, cluster_id, cluster_template,
                                      first_seen, last_seen, occurrence_count, sample_message, token_count)
         SELECT t, id, tpl, id, tpl, f, l, n, s, coalesce(array_length(string_to_array(tpl, ' '), 1), 0)
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[])
              AS u(t, id, tpl, n, f, l, s)
         ON CONFLICT (tenant_id, template_id) DO UPDATE SET
             occurrence_count = error_templates.occurrence_count + EXCLUDED.occurrence_count,
             first_seen = LEAST(error_templates.first_seen, EXCLUDED.first_seen),
             last_seen = GREATEST(error_templates.last_seen, EXCLUDED.last_seen)",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&templates)
    .bind(&counts)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&samples)
    .execute(&mut *conn)
    .await?;

    let mut rows: Vec<&TemplateDelta> = deltas.iter().collect();
    rows.sort_by(|a, b| {
        (&a.tenant, &a.template_id, a.session_id).cmp(&(&b.tenant, &b.template_id, b.session_id))
    });
    let t: Vec<&str> = rows.iter().map(|d| d.tenant.as_str()).collect();
    let id: Vec<&str> = rows.iter().map(|d| d.template_id.as_str()).collect();
    let s: Vec<Uuid> = rows.iter().map(|d| d.session_id).collect();
    let n: Vec<i64> = rows.iter().map(|d| d.count).collect();
    let f: Vec<DateTime<Utc>> = rows.iter().map(|d| d.first_seen).collect();
    let l: Vec<DateTime<Utc>> = rows.iter().map(|d| d.last_seen).collect();
    sqlx::query(
        "INSERT INTO error_template_sessions (tenant_id, template_id, session_id, occurrence_count, first_seen, last_seen)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
         ON CONFLICT (tenant_id, template_id, session_id) DO UPDATE SET
             occurrence_count = error_template_sessions.occurrence_count + EXCLUDED.occurrence_count,
             first_seen = LEAST(error_template_sessions.first_seen, EXCLUDED.first_seen),
             last_seen = GREATEST(error_template_sessions.last_seen, EXCLUDED.last_seen)",
    )
    .bind(&t)
    .bind(&id)
    .bind(&s)
    .bind(&n)
    .bind(&f)
    .bind(&l)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Points templates at (possibly new) clusters.
pub async fn remap_templates(
    conn: &mut PgConnection,
    tenant: &str,
    changes: &[(String, String, String)],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    let clusters: Vec<&str> = changes.iter().map(|c| c.1.as_str()).collect();
    let patterns: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
    sqlx::query(
        "UPDATE error_templates e SET cluster_id = u.c, cluster_template = u.p
         FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u(id, c, p)
         WHERE e.tenant_id = $1 AND e.template_id = u.id",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&clusters)
    .bind(&patterns)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The current cluster of each template id.
pub async fn clusters_of(
    conn: &mut PgConnection,
    tenant: &str,
    template_ids: &[&str],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT template_id, cluster_id FROM error_templates WHERE tenant_id = $1 AND template_id = ANY($2)",
    )
    .bind(tenant)
    .bind(template_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Rebuilds the `error_clusters` and `error_cluster_sessions` rows of the
/// given clusters from the template tables (a cluster with no templates
/// left simply disappears).
pub async fn materialize_clusters(
    conn: &mut PgConnection,
    tenant: &str,
    cluster_ids: &[String],
) -> Result<(), sqlx::Error> {
    if cluster_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM error_cluster_sessions WHERE tenant_id = $1 AND cluster_id = ANY($2)")
        .bind(tenant)
        .bind(cluster_ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM error_clusters WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant)
        .bind(cluster_ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO error_clusters (tenant_id, id, template, first_seen, last_seen, occurrence_count,
                                     session_count, sample_messages)
         SELECT t.tenant_id, t.cluster_id, min(t.cluster_template), min(t.first_seen), max(t.last_seen),
                sum(t.occurrence_count),
                (SELECT count(DISTINCT s.session_id) FROM error_template_sessions s
                  JOIN error_templates t2 ON t2.tenant_id = s.tenant_id AND t2.template_id = s.template_id
                  WHERE t2.tenant_id = t.tenant_id AND t2.cluster_id = t.cluster_id),
                (SELECT jsonb_agg(m) FROM (SELECT t3.sample_message AS m FROM error_templates t3
                  WHERE t3.tenant_id = t.tenant_id AND t3.cluster_id = t.cluster_id
                  ORDER BY t3.occurrence_count DESC, t3.template_id LIMIT 5) AS x)
         FROM error_templates t
         WHERE t.tenant_id = $1 AND t.cluster_id = ANY($2)
         GROUP BY t.tenant_id, t.cluster_id",
    )
    .bind(tenant)
    .bind(cluster_ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO error_cluster_sessions (tenant_id, cluster_id, session_id, occurrence_count, first_seen, last_seen)
         SELECT t.tenant_id, t.cluster_id, s.session_id, sum(s.occurrence_count), min(s.first_seen), max(s.last_seen)
         FROM error_template_sessions s
         JOIN error_templates t ON t.tenant_id = s.tenant_id AND t.template_id = s.template_id
         WHERE t.tenant_id = $1 AND t.cluster_id = ANY($2)
         GROUP BY t.tenant_id, t.cluster_id, s.session_id",
    )
    .bind(tenant)
    .bind(cluster_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings the given clusters up to date after occurrences of `sessions`
/// were added, when no template changed cluster: the cluster rows are
/// recomputed from their templates (a handful each), but only the
/// (cluster, session) rows of `sessions` are rewritten.
/// [`materialize_clusters`] rewrites every session row of a cluster, whose
/// cost grows with the sessions the cluster ever had: run on every batch it
/// was the processor's largest write (4,000 rows per batch of 2,000 events
/// after a few hundred sessions, under `make bench`).
pub async fn refresh_clusters(
    conn: &mut PgConnection,
    tenant: &str,
    cluster_ids: &[String],
    sessions: &[Uuid],
) -> Result<(), sqlx::Error> {
    if cluster_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO error_clusters (tenant_id, id, template, first_seen, last_seen, occurrence_count,
                                     sample_messages)
         SELECT t.tenant_id, t.cluster_id, min(t.cluster_template), min(t.first_seen), max(t.last_seen),
                sum(t.occurrence_count),
                (SELECT jsonb_agg(m) FROM (SELECT t3.sample_message AS m FROM error_templates t3
                  WHERE t3.tenant_id = t.tenant_id AND t3.cluster_id = t.cluster_id
                  ORDER BY t3.occurrence_count DESC, t3.template_id LIMIT 5) AS x)
         FROM error_templates t
         WHERE t.tenant_id = $1 AND t.cluster_id = ANY($2)
         GROUP BY t.tenant_id, t.cluster_id
         ON CONFLICT (tenant_id, id) DO UPDATE SET
             template = EXCLUDED.template, first_seen = EXCLUDED.first_seen,
             last_seen = EXCLUDED.last_seen, occurrence_count = EXCLUDED.occurrence_count,
             sample_messages = EXCLUDED.sample_messages, updated_at = now()",
    )
    .bind(tenant)
    .bind(cluster_ids)
    .execute(&mut *conn)
    .await?;
    // Point lookups per (template, session) through the unnested session
    // list, rather than every session of each template. A cluster's
    // session count grows by the rows this inserts (not updates):
    // `xmax = 0` marks a row version created by an insert, so counting
    // them keeps `session_count` exact without re-counting every session
    // of the cluster each batch.
    sqlx::query(
        "WITH up AS (
             INSERT INTO error_cluster_sessions (tenant_id, cluster_id, session_id, occurrence_count,
                                                 first_seen, last_seen)
             SELECT t.tenant_id, t.cluster_id, s.session_id, sum(s.occurrence_count), min(s.first_seen),
                    max(s.last_seen)
             FROM error_templates t
             CROSS JOIN UNNEST($3::uuid[]) AS u(session_id)
             JOIN error_template_sessions s
               ON s.tenant_id = t.tenant_id AND s.template_id = t.template_id AND s.session_id = u.session_id
             WHERE t.tenant_id = $1 AND t.cluster_id = ANY($2)
             GROUP BY t.tenant_id, t.cluster_id, s.session_id
             ON CONFLICT (tenant_id, cluster_id, session_id) DO UPDATE SET
                 occurrence_count = EXCLUDED.occurrence_count, first_seen = EXCLUDED.first_seen,
                 last_seen = EXCLUDED.last_seen
             RETURNING cluster_id, (xmax = 0) AS inserted)
         UPDATE error_clusters c SET session_count = c.session_count + n.added
         FROM (SELECT cluster_id, count(*) FILTER (WHERE inserted) AS added FROM up GROUP BY cluster_id) n
         WHERE c.tenant_id = $1 AND c.id = n.cluster_id AND n.added > 0",
    )
    .bind(tenant)
    .bind(cluster_ids)
    .bind(sessions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
