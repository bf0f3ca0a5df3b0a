use achilles_processor::engine::{failure_info, EngineConfig};
fn main() {
    let s = achilles_core::config::ProcessorSettings::default();
    let cfg = EngineConfig::from_settings(&s);
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::args()
        .nth(2)
        .and_then(|x| x.parse().ok())
        .unwrap_or(1);
    let want = std::env::args().nth(3);
    let sessions = achilles_eval::generate(seed, n);
    let r = achilles_processor::evaluate::evaluate(&sessions, &cfg).unwrap();
    println!("{}", r.render());
    let Some(want) = want else { return };
    for s in &sessions {
        let (start, events) = achilles_processor::evaluate::materialise(
            s,
            achilles_processor::evaluate::offline_t0(),
        )
        .unwrap();
        let rows = achilles_processor::evaluate::rows(&start, &events, &cfg);
        if want == "fp" {
            for r in rows.iter().filter(|r| r.confidence >= 0.5) {
                let c = s.events.iter().position(|e| e.id == r.cause).unwrap();
                let e = s.events.iter().position(|e| e.id == r.effect).unwrap();
                if !s.truth.iter().any(|p| p.cause == c && p.effect == e) {
                    println!(
                        "== FP cause {c} effect {e} conf {} session {} meta {:?}",
                        r.confidence, s.id, s.metadata
                    );
                    for (i, ev) in s.events.iter().enumerate() {
                        if ev.kind == "llm_call" || i > e {
                            continue;
                        }
                        let d = ev.data.to_string();
                        println!(
                            "{i:3} {:7} {:10} {} {}",
                            ev.offset_ms / 1000,
                            ev.actor,
                            ev.tag,
                            &d[..d.len().min(140)]
                        );
                    }
                    return;
                }
            }
            continue;
        }
        for p in &s.truth {
            let hit = rows
                .iter()
                .find(|r| r.cause == s.events[p.cause].id && r.effect == s.events[p.effect].id);
            let bad = if want == "fix" {
                match hit {
                    Some(r) => {
                        r.confidence >= 0.5 && r.fixed_by != p.fixed_by.map(|i| s.events[i].id)
                    }
                    None => false,
                }
            } else {
                match hit {
                    Some(r) => r.confidence < 0.5,
                    None => true,
                }
            };
            if bad && (want == "fix" || p.label.contains(want.as_str())) {
                let pf = hit
                    .and_then(|r| r.fixed_by)
                    .and_then(|id| s.events.iter().position(|e| e.id == id));
                let d = |i: Option<usize>| {
                    i.map(|i| {
                        format!(
                            "{i} {} {}",
                            s.events[i].tag,
                            s.events[i]
                                .data
                                .get("command")
                                .or(s.events[i].data.get("framework"))
                                .map(|v| v.to_string())
                                .unwrap_or_default()
                        )
                    })
                };
                println!(
                    "FIX {} effect {} {}: truth {:?} predicted {:?}",
                    p.label,
                    p.effect,
                    s.events[p.effect]
                        .data
                        .get("command")
                        .map(|v| v.to_string())
                        .unwrap_or(s.events[p.effect].kind.to_string()),
                    d(p.fixed_by),
                    d(pf)
                );
                if want == "fix" {
                    continue;
                }
                println!("== MISS {} session {} cwd {:?}", p.label, s.id, s.metadata);
                for (i, e) in s.events.iter().enumerate() {
                    if e.kind == "llm_call" {
                        continue;
                    }
                    let mark = if i == p.cause {
                        "CAUSE"
                    } else if i == p.effect {
                        "EFFECT"
                    } else {
                        ""
                    };
                    let d = e.data.to_string();
                    println!(
                        "{i:3} {:7} {:6} {:10} {} {}",
                        e.offset_ms / 1000,
                        mark,
                        e.actor,
                        e.tag,
                        &d[..d.len().min(150)]
                    );
                }
                let info = failure_info(
                    &events[p.effect].payload,
                    start.metadata.get("cwd").and_then(|v| v.as_str()),
                );
                println!("{:#?}", info.map(|i| (i.names, i.check, i.environmental)));
                println!(
                    "rows: {:?}",
                    rows.iter()
                        .filter(|r| r.effect == s.events[p.effect].id)
                        .collect::<Vec<_>>()
                );
                return;
            }
        }
    }
}
