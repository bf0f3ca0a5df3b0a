//! Error clusters across instances: occurrences are recorded per template
//! (a pure function of the message), and templates are merged into clusters
//! by [`merge`], a deterministic function of the tenant's *set* of
//! templates. Whenever a batch brings a template the tenant has not seen,
//! the tenant's templates of that length (merging never crosses lengths, so
//! the result equals a re-merge of the whole set) are re-merged under a
//! per-tenant lock and the clusters whose templates changed are rebuilt
//! (the others only get their rows for this batch's sessions refreshed) — so two instances, or a restarted one,
//! always map a message to the same cluster, and a merge never loses or
//! double-counts occurrences.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::clusters::{self, TemplateDelta};
use achilles_cluster::{Clusterer, Config, MaskRules, RuleSet};

/// Template id → (cluster id, cluster pattern), for a tenant's whole set of
/// (template id, sample message) pairs, masked with the tenant's `rules`
/// (the same ones the template ids were made with).
pub fn merge(
    templates: &[(String, String)],
    rules: &MaskRules,
) -> HashMap<String, (String, String)> {
    let mut c = Clusterer::new(Config::default()).with_rules(rules.clone());
    for (_, sample) in templates {
        c.observe(sample);
    }
    c.rebuild();
    templates
        .iter()
        .map(|(id, sample)| {
            let cid = c.observe(sample);
            let pattern = c.template(cid).unwrap_or_default().to_owned();
            (id.clone(), (cid.to_string(), pattern))
        })
        .collect()
}

/// Records a batch's occurrences and keeps clusters up to date. Returns the
/// number of templates seen for the first time.
pub async fn record(
    conn: &mut PgConnection,
    deltas: &[TemplateDelta],
    rules: &RuleSet,
) -> Result<u64, sqlx::Error> {
    if deltas.is_empty() {
        return Ok(0);
    }
    let tenants: BTreeSet<&str> = deltas.iter().map(|d| d.tenant.as_str()).collect();
    clusters::lock_tenants(conn, &tenants.iter().copied().collect::<Vec<_>>()).await?;
    // Per tenant: how many templates are new, and their lengths.
    let mut fresh_per_tenant: HashMap<&str, (u64, Vec<i32>)> = HashMap::new();
    for tenant in &tenants {
        let ids: Vec<&str> = deltas
            .iter()
            .filter(|d| d.tenant == *tenant)
            .map(|d| d.template_id.as_str())
            .collect();
        let known = clusters::known_templates(conn, tenant, &ids).await?;
        let fresh: BTreeSet<&str> = ids.into_iter().filter(|id| !known.contains(*id)).collect();
        let lengths: BTreeSet<i32> = deltas
            .iter()
            .filter(|d| d.tenant == *tenant && fresh.contains(d.template_id.as_str()))
            .map(|d| d.template.split(' ').count() as i32)
            .collect();
        fresh_per_tenant.insert(*tenant, (fresh.len() as u64, lengths.into_iter().collect()));
    }
    clusters::add_template_occurrences(conn, deltas).await?;

    for tenant in &tenants {
        let touched: Vec<&str> = deltas
            .iter()
            .filter(|d| d.tenant == *tenant)
            .map(|d| d.template_id.as_str())
            .collect();
        // Clusters whose template set changed are rebuilt whole; the others
        // only gained occurrences of this batch's sessions.
        let mut grown: BTreeSet<String> = clusters::clusters_of(conn, tenant, &touched)
            .await?
            .into_values()
            .collect();
        let mut remapped: BTreeSet<String> = BTreeSet::new();
        let (fresh, lengths) = &fresh_per_tenant[tenant];
        if *fresh > 0 {
            let all = clusters::templates_of_lengths(conn, tenant, lengths).await?;
            let pairs: Vec<(String, String)> = all
                .iter()
                .map(|(id, sample, _)| (id.clone(), sample.clone()))
                .collect();
            let merged = merge(&pairs, rules.for_tenant(tenant));
            let mut changes = Vec::new();
            for (id, _, old) in &all {
                let Some((new, pattern)) = merged.get(id) else {
                    continue;
                };
                if new != old {
                    remapped.insert(old.clone());
                    remapped.insert(new.clone());
                    changes.push((id.clone(), new.clone(), pattern.clone()));
                }
            }
            clusters::remap_templates(conn, tenant, &changes).await?;
            // A template that kept its cluster id may still have a new
            // pattern (its cluster grew); refresh those too.
            let patterns: Vec<(String, String, String)> = all
                .iter()
                .filter_map(|(id, _, old)| {
                    merged
                        .get(id)
                        .filter(|(new, _)| new == old)
                        .map(|(c, p)| (id.clone(), c.clone(), p.clone()))
                })
                .collect();
            clusters::remap_templates(conn, tenant, &patterns).await?;
            grown.extend(patterns.into_iter().map(|p| p.1));
        }
        let sessions: Vec<Uuid> = deltas
            .iter()
            .filter(|d| d.tenant == *tenant)
            .map(|d| d.session_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let grown: Vec<String> = grown.difference(&remapped).cloned().collect();
        let remapped: Vec<String> = remapped.into_iter().collect();
        clusters::materialize_clusters(conn, tenant, &remapped).await?;
        clusters::refresh_clusters(conn, tenant, &grown, &sessions).await?;
    }
    Ok(fresh_per_tenant.values().map(|(n, _)| n).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(msgs: &[&str]) -> Vec<(String, String)> {
        msgs.iter()
            .map(|m| {
                (
                    achilles_cluster::template_of(m).id().to_string(),
                    (*m).to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn similar_templates_merge_and_the_result_ignores_order() {
        let msgs = [
            "session closed for user alice",
            "session closed for user bob",
            "session closed for user carol",
            "disk full on /dev/sda1",
        ];
        let none = MaskRules::default();
        let a = merge(&pairs(&msgs), &none);
        let mut rev = pairs(&msgs);
        rev.reverse();
        assert_eq!(a, merge(&rev, &none));
        let ids: BTreeSet<&String> = a.values().map(|(c, _)| c).collect();
        assert_eq!(
            ids.len(),
            2,
            "three user templates merge, the disk one stays apart: {a:?}"
        );
        let user = &a[&achilles_cluster::template_of(msgs[0]).id().to_string()];
        assert_eq!(user.1, "session closed for user <*>");
    }
}
