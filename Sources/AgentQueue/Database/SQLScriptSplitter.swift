/// Splits a SQL script into single statements, because PostgresNIO sends one statement per query.
/// It respects quotes, quoted identifiers, comments and dollar-quoted bodies (`$$ ... $$`, `$fn$ ... $fn$`),
/// so PL/pgSQL functions stay whole. Hand-written: no Swift package splits PostgreSQL scripts.
public enum SQLScriptSplitter {
    public static func split(_ script: String) -> [String] {
        let chars = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var hasCode = false
        var i = 0

        func flush() {
            let text = String(current).trimmingWhitespace()
            if hasCode && !text.isEmpty { statements.append(text) }
            current = String.UnicodeScalarView()
            hasCode = false
        }
        func append(_ from: Int, _ to: Int) {  // chars[from..<to]
            current.append(contentsOf: chars[from..<min(to, chars.count)])
        }

        while i < chars.count {
            let c = chars[i]
            let next: Unicode.Scalar? = i + 1 < chars.count ? chars[i + 1] : nil
            if c == "-" && next == "-" {  // line comment
                var j = i
                while j < chars.count && chars[j] != "\n" { j += 1 }
                append(i, j); i = j
            } else if c == "/" && next == "*" {  // block comment (nests in PostgreSQL)
                var depth = 1, j = i + 2
                while j < chars.count && depth > 0 {
                    if chars[j] == "/" && j + 1 < chars.count && chars[j + 1] == "*" {
                        depth += 1; j += 2
                    } else if chars[j] == "*" && j + 1 < chars.count && chars[j + 1] == "/" {
                        depth -= 1; j += 2
                    } else {
                        j += 1
                    }
                }
                append(i, j); i = j
            } else if c == "'" || c == "\"" {  // string or quoted identifier; doubled quote escapes
                var j = i + 1
                while j < chars.count {
                    if chars[j] == c {
                        if j + 1 < chars.count && chars[j + 1] == c { j += 2; continue }
                        j += 1; break
                    }
                    j += 1
                }
                append(i, j); i = j; hasCode = true
            } else if c == "$", let tagEnd = dollarTagEnd(chars, from: i) {
                let tag = Array(chars[i...tagEnd])
                var j = tagEnd + 1
                var closed = false
                while j < chars.count {
                    if chars[j] == "$" && j + tag.count <= chars.count && Array(chars[j..<(j + tag.count)]) == tag {
                        j += tag.count; closed = true; break
                    }
                    j += 1
                }
                if !closed { j = chars.count }
                append(i, j); i = j; hasCode = true
            } else if c == ";" {
                flush(); i += 1
            } else {
                current.append(c)
                if !c.properties.isWhitespace { hasCode = true }
                i += 1
            }
        }
        flush()
        return statements
    }

    /// The index of the closing `$` of a dollar-quote tag starting at `start`, or nil when `$` is not one
    /// (a positional parameter like `$1`, or part of an identifier).
    private static func dollarTagEnd(_ chars: [Unicode.Scalar], from start: Int) -> Int? {
        if start > 0 {
            let prev = chars[start - 1]
            if prev.properties.isAlphabetic || ("0"..."9").contains(prev) || prev == "_" { return nil }
        }
        var j = start + 1
        while j < chars.count {
            let c = chars[j]
            if c == "$" { return j }
            let isTagChar = c.properties.isAlphabetic || c == "_" || (j > start + 1 && ("0"..."9").contains(c))
            if !isTagChar { return nil }
            j += 1
        }
        return nil
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars
        while let f = scalars.first, f.properties.isWhitespace { scalars.removeFirst() }
        while let l = scalars.last, l.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
