//! Footnotes on map memory: what the number means on this kernel, and the caveats that apply
//! to the rows shown (only those).

use ebpfstat_dbus::{MemlockMeaning, NoteCode};

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
/// row can point at its own footnote. The words are the API crate's.
pub fn coded_notes<'a>(
    meaning: &str,
    codes: impl IntoIterator<Item = &'a str>,
) -> Vec<(Option<&'static str>, String)> {
    let codes: std::collections::BTreeSet<&str> = codes.into_iter().collect();
    // A kernel the daemon cannot tell about is read as the older, bounding kind.
    let meaning = meaning.parse().unwrap_or(MemlockMeaning::MaxSize);
    let mut out = vec![(None, meaning.footnote().to_owned())];
    for code in NoteCode::ALL {
        if let Some(text) = code.footnote()
            && codes.contains(code.as_str())
        {
            out.push((Some(code.as_str()), text.to_owned()));
        }
    }
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
