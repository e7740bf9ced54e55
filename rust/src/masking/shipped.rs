// The shipped catalogue (`python/graphwarden/masking/catalogue.toml`) read for the Rust tests
// and the cargo bench, which include this file (`include!`) after bringing `EntrySpec`,
// `Action` and `Validator` into scope; it needs the `toml` dev-dependency.

/// The enabled entries of the shipped catalogue, and every positive fixture of theirs.
fn shipped_catalogue() -> (Vec<EntrySpec>, Vec<Vec<u8>>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/python/graphwarden/masking/catalogue.toml");
    let doc: toml::Table = std::fs::read_to_string(path).expect("catalogue").parse().expect("toml");
    let strs = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut entries = Vec::new();
    let mut positives = Vec::new();
    for e in doc["entries"].as_array().expect("entries") {
        let t = e.as_table().expect("entry");
        if t.get("enabled").and_then(|v| v.as_bool()) == Some(false) {
            continue;
        }
        let s = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let action = s("action");
        positives.extend(strs(t.get("positive")).into_iter().map(String::into_bytes));
        entries.push(EntrySpec {
            id: s("id"),
            entity: s("entity"),
            patterns: strs(t.get("patterns")),
            validator: Validator::parse(&s("validator")).expect("validator"),
            action: Action::parse(if action.is_empty() { "label" } else { &action }).expect("action"),
            group: t.get("group").and_then(|v| v.as_integer()).unwrap_or(0) as usize,
            max_len: t["max_len"].as_integer().expect("max_len") as usize,
            prefixes: strs(t.get("prefixes")).into_iter().map(String::into_bytes).collect(),
            prefilter: t.get("prefilter").and_then(|v| v.as_str()).map(str::to_string),
        });
    }
    (entries, positives)
}
