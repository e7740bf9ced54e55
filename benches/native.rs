//! Cargo benches for the pure Rust parts (`cargo bench --bench native`): the masking engine on
//! the shipped catalogue (block mode on clean, PII-dense and prose text, with prose's time split
//! into its parts; a 1 KiB body, 256-byte stream writes, JSON) and the audit record encoding. Plain `std::time` loops (harness = false), best
//! of several rounds, so that no extra framework is built in CI; the Python-level comparison
//! against `re`, hyperscan and pyperscan is benchmarks/masking_bench.py.
//!
//! The corpus has the shape of `graphwarden masking bench`'s (same words, one catalogue value per
//! ~1 KiB when dense) from a fixed-seed generator of its own. `GW_BENCH_LOOP=stream|kib|kibitem|json|jsonitem|file|filejson|clean|dense|prose`
//! repeats one case for 6 s, for a profiler (`GW_BENCH_ROUNDS=N`: N times, for callgrind);
//! `GW_BENCH_LOOP=filesplit GW_BENCH_FILE=F GW_BENCH_ROUNDS=1` times a file's `spans()` apart from
//! the write of its masked copy.

use std::hint::black_box;
use std::time::{Duration, Instant};

use graphwarden_native::audit::format::put_record;
use graphwarden_native::masking::{Action, Engine, EntrySpec, StreamState, Validator};

const WORDS: &str = "the order was shipped to our customer on 2026-11-24 with tracking id 9f8e7d6c5b4a \
    invoice INV-482913 total 1249.50 EUR status delivered and signed by the recipient at \
    the front desk reference 550e8400-e29b-41d4-a716-446655440000 build v2.14.3";

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

include!("../rust/src/masking/shipped.rs");

fn corpus(size: usize, values: Option<&[Vec<u8>]>) -> Vec<u8> {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut rng = Rng(1);
    let mut out = Vec::with_capacity(size + 256);
    let mut next_value = 1024;
    while out.len() < size {
        out.extend_from_slice(words[rng.below(words.len())].as_bytes());
        out.push(b' ');
        if let Some(v) = values {
            if out.len() >= next_value {
                out.extend_from_slice(&v[rng.below(v.len())]);
                out.push(b' ');
                next_value += 1024;
            }
        }
    }
    out.truncate(size);
    out
}

/// Chat prose without PII, as `graphwarden.masking.cli.prose` makes it (same words: a few short
/// numbers, no ids).
fn prose(size: usize) -> Vec<u8> {
    const PROSE: &str = "the assistant reviewed your request and found that the quarterly report needs 3 more \
        sections before it can be shared with the team, please confirm whether you want a summary \
        of the open items or the full list of 12 changes we discussed yesterday afternoon";
    let words: Vec<&str> = PROSE.split_whitespace().collect();
    let mut rng = Rng(1);
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        out.extend_from_slice(words[rng.below(words.len())].as_bytes());
        out.extend_from_slice(if rng.below(100) < 7 { b". " } else { b" " });
    }
    out.truncate(size);
    out
}

/// Best time per call over `rounds` rounds of `iters` calls.
fn best(rounds: usize, iters: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters as u32
        })
        .min()
        .expect("rounds")
}

/// Best time per 256-byte write of `text`, in order, into one stream.
fn stream_writes(engine: &Engine, text: &[u8], rounds: usize, iters: usize) -> Duration {
    let mut st = StreamState::default();
    let mut at = 0;
    best(rounds, iters, || {
        if at + 256 > text.len() {
            at = 0;
        }
        black_box(engine.feed(&mut st, &text[at..at + 256]));
        at += 256;
    })
}

fn main() {
    let (entries, positives) = shipped_catalogue();
    let n = entries.len();
    if std::env::var_os("GW_BENCH_PER_ENTRY").is_some() {
        let size = 1 << 19;
        let clean = corpus(size, None);
        let dense = corpus(size, Some(&positives));
        for e in &entries {
            let one = Engine::new(vec![e.clone()], [7; 32]).expect("entry compiles");
            let c = best(3, 1, || drop(black_box(one.mask(black_box(&clean)))));
            let d = best(3, 1, || drop(black_box(one.mask(black_box(&dense)))));
            let w = stream_writes(&one, &dense, 3, 500);
            println!(
                "{:<24} clean {:7.3} GB/s  dense {:7.3} GB/s  stream dense {:7.2} us",
                e.id,
                size as f64 / c.as_secs_f64() / 1e9,
                size as f64 / d.as_secs_f64() / 1e9,
                w.as_secs_f64() * 1e6
            );
        }
        return;
    }
    let t = Instant::now();
    let engine = Engine::new(entries, [7; 32]).expect("catalogue compiles");
    println!(
        "catalogue: {n} entries, compiled in {:.0} ms; passes: {}",
        t.elapsed().as_secs_f64() * 1e3,
        engine.simd()
    );

    let size = 1 << 21;
    let clean = corpus(size, None);
    let dense = corpus(size, Some(&positives));
    let text = prose(size);
    // 1 KiB bodies: one without PII (the dense text's first KiB holds no value) and one with a
    // value (its second begins at 1024), as text and as the string of a JSON document
    let kib = &dense[..1024];
    let item = &dense[512..1536];
    let doc_item = serde_json::to_vec(&serde_json::json!({ "text": String::from_utf8_lossy(item) })).expect("json");
    if let Some(case) = std::env::var_os("GW_BENCH_LOOP") {
        // one case, repeated for 6 s, to run under a profiler (`perf record`)
        // or `GW_BENCH_ROUNDS` times (to count instructions under callgrind)
        let rounds: Option<u32> = std::env::var("GW_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok());
        let t = Instant::now();
        let mut done = 0;
        while rounds.map_or(t.elapsed().as_secs() < 6, |r| done < r) {
            done += 1;
            match case.to_str() {
                Some("stream") => drop(black_box(stream_writes(&engine, &clean, 1, 1000))),
                Some("kib") => (0..1000).for_each(|_| drop(black_box(engine.mask(black_box(kib))))),
                Some("json") => {
                    let doc = [b"{\"text\": \"".as_slice(), &clean[..1000], b"\"}"].concat();
                    (0..1000).for_each(|_| drop(black_box(engine.mask_json_if_needed(black_box(&doc)))))
                }
                Some("jsonitem") => {
                    (0..1000).for_each(|_| drop(black_box(engine.mask_json_if_needed(black_box(&doc_item)))))
                }
                Some("file") | Some("filejson") => {
                    // a body of one's own (`GW_BENCH_FILE`), as text or as a JSON document
                    let body = std::fs::read(std::env::var_os("GW_BENCH_FILE").expect("GW_BENCH_FILE")).expect("read");
                    let t = Instant::now();
                    if case == "file" {
                        (0..1000).for_each(|_| drop(black_box(engine.mask(black_box(&body)))))
                    } else {
                        (0..1000).for_each(|_| drop(black_box(engine.mask_json_if_needed(black_box(&body)))))
                    }
                    if done % 50 == 0 {
                        eprintln!("{:.0} ns per call", t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                Some("filesplit") => {
                    // a body of one's own: `spans()` alone, then `spans()` with the masked copy
                    // written (the fastest of 300 calls each, interleaved), to tell the searches
                    // from the write
                    let body = std::fs::read(std::env::var_os("GW_BENCH_FILE").expect("GW_BENCH_FILE")).expect("read");
                    let (mut spans, mut whole) = (Duration::MAX, Duration::MAX);
                    for _ in 0..300 {
                        let t = Instant::now();
                        drop(black_box(engine.spans(black_box(&body))));
                        spans = spans.min(t.elapsed());
                        let t = Instant::now();
                        let found = engine.spans(black_box(&body));
                        let n = engine.masked_len(&body, &found);
                        let mut out: Vec<u8> = Vec::with_capacity(n);
                        engine.write_masked(&body, &found, &mut out.spare_capacity_mut()[..n]);
                        drop(black_box(out));
                        whole = whole.min(t.elapsed());
                    }
                    println!(
                        "{} bytes: spans() {:.3} ms, with the masked copy written {:.3} ms",
                        body.len(),
                        spans.as_secs_f64() * 1e3,
                        whole.as_secs_f64() * 1e3
                    );
                }
                Some("kibitem") => (0..1000).for_each(|_| drop(black_box(engine.mask(black_box(item))))),
                Some("dense") => drop(black_box(engine.mask(black_box(&dense)))),
                Some("prose") => drop(black_box(engine.mask(black_box(&text)))),
                _ => drop(black_box(engine.mask(black_box(&clean)))),
            }
        }
        return;
    }
    for (name, text) in [("clean", &clean), ("dense", &dense)] {
        let per = best(5, 1, || drop(black_box(engine.mask(black_box(text)))));
        println!("mask, 2 MiB {name:<5}          {:8.3} GB/s", size as f64 / per.as_secs_f64() / 1e9);
    }
    // Prose, and what its time is made of: the pass over the entries led by a literal
    // (`may_match` scans without masking: the gate, and Hyperscan only where it finds
    // candidates, none in this prose), the digit-shape pass (the four digit entries alone;
    // `mask` returns a copy) and a plain copy of the text.
    let gbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e9;
    let (all, _) = shipped_catalogue();
    let digit_ids = ["payment_card", "us_ssn", "iban", "phone"];
    let literal = Engine::new(all.iter().filter(|e| !digit_ids.contains(&e.id.as_str())).cloned().collect(), [7; 32])
        .expect("literal-led entries compile");
    let digits = Engine::new(all.iter().filter(|e| digit_ids.contains(&e.id.as_str())).cloned().collect(), [7; 32])
        .expect("digit entries compile");
    assert!(!engine.may_match(&text), "the prose holds nothing to mask");
    println!(
        "mask, 2 MiB prose          {:8.3} GB/s",
        gbps(best(5, 3, || drop(black_box(engine.mask(black_box(&text))))))
    );
    println!(
        "  literal-led entries, scan {:7.3} GB/s",
        gbps(best(5, 3, || {
            black_box(literal.may_match(black_box(&text)));
        }))
    );
    println!(
        "  literal-led entries, mask {:7.3} GB/s",
        gbps(best(5, 3, || drop(black_box(literal.mask(black_box(&text))))))
    );
    println!(
        "  digit entries, mask       {:7.3} GB/s",
        gbps(best(5, 3, || drop(black_box(digits.mask(black_box(&text))))))
    );
    println!(
        "  copy of the text          {:7.3} GB/s",
        gbps(best(5, 3, || drop(black_box(black_box(&text).to_vec()))))
    );
    println!(
        "mask, 1 KiB without PII    {:8.2} us",
        best(7, 2000, || drop(black_box(engine.mask(black_box(kib))))).as_secs_f64() * 1e6
    );
    println!(
        "mask, 1 KiB with a value   {:8.2} us",
        best(7, 2000, || drop(black_box(engine.mask(black_box(item))))).as_secs_f64() * 1e6
    );
    let doc = [b"{\"text\": \"".as_slice(), &clean[..1000], b"\"}"].concat();
    // what Python's `mask_json` calls, and its two parts when nothing needs masking
    let us = |f: &mut dyn FnMut()| best(7, 2000, f).as_secs_f64() * 1e6;
    println!(
        "mask_json, 1 KiB clean     {:8.2} us",
        us(&mut || drop(black_box(engine.mask_json_if_needed(black_box(&doc)))))
    );
    println!(
        "mask_json, 1 KiB with value {:7.2} us",
        us(&mut || drop(black_box(engine.mask_json_if_needed(black_box(&doc_item)))))
    );
    println!(
        "  raw pass (raw_clear)      {:7.2} us",
        us(&mut || {
            black_box(engine.raw_clear(black_box(&doc)));
        })
    );
    println!(
        "  JSON validation           {:7.2} us",
        us(&mut || drop(black_box(graphwarden_native::masking::json::validate(black_box(&doc)))))
    );
    for (name, text) in [("clean", &clean), ("dense", &dense)] {
        let per = stream_writes(&engine, text, 7, 2000);
        println!("stream write 256 B {name:<5}   {:8.2} us", per.as_secs_f64() * 1e6);
    }

    let body = vec![b'x'; 1024];
    let mut prev = [0u8; 32];
    let mut out = Vec::with_capacity(1 << 20);
    let mut seq = 0u64;
    let per = best(7, 20_000, || {
        if out.len() > (1 << 20) - 2048 {
            out.clear();
        }
        seq += 1;
        prev =
            put_record(&mut out, b"chain-0", seq, 1_700_000_000_000_000_000 + seq, &prev, b"request", black_box(&body));
    });
    println!("audit record encode+hash, 1 KiB body {:8.3} us", per.as_secs_f64() * 1e6);
}
