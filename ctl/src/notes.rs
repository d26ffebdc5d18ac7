//! Footnotes on map memory: what the number means on this kernel, and the caveats that apply
//! to the rows shown (only those).

/// Footnote lines for rows carrying these note codes, on a kernel whose memlock is `meaning`.
pub fn map_memory_notes<'a>(
    meaning: &str,
    codes: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    coded_notes(meaning, codes)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// The same, each with the code it explains (`None` for the first: what memory means), so a
/// row can point at its own footnote.
pub fn coded_notes<'a>(
    meaning: &str,
    codes: impl IntoIterator<Item = &'a str>,
) -> Vec<(Option<&'static str>, String)> {
    let codes: std::collections::BTreeSet<&str> = codes.into_iter().collect();
    let mut out = vec![(
        None,
        match meaning {
            "estimate" => {
                "map memory: the kernel's estimate of what the maps use now (Linux ≥ 6.4)"
                    .to_owned()
            }
            _ => "map memory: the most the maps may use, from their declared sizes (Linux < 6.4)"
                .to_owned(),
        },
    )];
    let mut add = |code: &'static str, text: &str| {
        if codes.contains(code) {
            out.push((Some(code), text.to_owned()));
        }
    };
    add(
        "shared_maps",
        "shared maps are counted in every program using them; `ebpfstatctl show` gives per-owner \
         totals that count each map once",
    );
    add(
        "perf_event_array",
        "perf_event_array maps count their fd slots, not the perf ring buffers behind them",
    );
    add(
        "map_of_maps",
        "array_of_maps/hash_of_maps count the outer map, not the inner maps",
    );
    add(
        "tail_calls",
        "programs using a prog_array carry the run time of the programs they tail-call (those \
         show 0 runs)",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_notes_that_apply() {
        let n = map_memory_notes("estimate", ["shared_maps", "no_holder"]);
        assert_eq!(n.len(), 2);
        assert!(n[0].contains("estimate"));
        assert!(n[1].starts_with("shared maps"));
        let n = map_memory_notes("max-size", []);
        assert_eq!(n.len(), 1);
        assert!(n[0].contains("most the maps may use"));
        let n = map_memory_notes(
            "estimate",
            ["tail_calls", "perf_event_array", "map_of_maps"],
        );
        assert_eq!(n.len(), 4);
    }
}
