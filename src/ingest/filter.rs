//! Which file names are articles: listed extensions only, never dot-files
//! or the temporary names of editors and downloaders. Names only; no I/O.

use std::path::Path;

/// True when `path`'s name may be an article.
pub fn is_candidate(path: &Path, extensions: &[String]) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    let Some((_, extension)) = name.rsplit_once('.') else {
        return false;
    };
    let extension = extension.to_ascii_lowercase();
    if matches!(
        extension.as_str(),
        "tmp" | "part" | "swp" | "swx" | "crdownload"
    ) {
        return false;
    }
    extensions.contains(&extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_extensions_and_no_temporary_names() {
        let extensions: Vec<String> = ["txt", "md", "html", "json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cases = [
            ("seeds/a.txt", true),
            ("seeds/A.TXT", true),
            ("seeds/story.html", true),
            ("seeds/.hidden.txt", false),
            ("seeds/a.txt.tmp", false),
            ("seeds/a.txt.part", false),
            ("seeds/a.txt~", false),
            ("seeds/.a.txt.swp", false),
            ("seeds/a.pdf", false),
            ("seeds/README", false),
        ];
        for (path, expected) in cases {
            assert_eq!(
                is_candidate(Path::new(path), &extensions),
                expected,
                "{path}"
            );
        }
    }
}
