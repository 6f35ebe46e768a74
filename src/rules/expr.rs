//! The match-expression language of SPEC.md: parsing a rule's `match` string
//! into an [`Expr`] tree, with errors that point at a byte range of the
//! expression so `newswatch check` can name the exact column.
//!
//! Grammar, loosest binding first (operators are upper case; any other word is
//! a term):
//!
//! ```text
//! or    := and ( "OR" and )*
//! and   := near ( "AND"? near )*          juxtaposition means AND
//! near  := unary ( "NEAR/" n unary )*     left-associative
//! unary := "NOT" unary | primary
//! primary := "(" or ")" | term
//!          | N "OF" "(" args ")"                    at least N operands hold
//!          | "count(" or ")" cmp N                  occurrences compared to N
//!          | "SENTENCE(" args ")"                   all operands in one sentence
//!          | "WEIGHTS(" or ":" N ( "," or ":" N )* ")" cmp N   sum of the weights
//!                                                   of the operands that hold
//! args  := or ( "," or )*
//! cmp   := ">=" | ">" | "=" | "<=" | "<"
//! term  := word | word* | "phrase" | "phrase prefix*"
//!        | entity:ID | class:NAME | list:NAME
//!        | title:term                        the term, in the title only
//!        | /regex/                           on the original text; `\/` is a slash
//! ```
//!
//! This module only knows syntax: it never resolves names and never folds text.

use std::fmt;
use std::ops::Range;

/// A parsed match expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Term(Term),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Near {
        left: Box<Expr>,
        right: Box<Expr>,
        /// The most words allowed between the two sides.
        distance: u32,
        /// Where the `NEAR/n` operator is, for error messages.
        span: Range<usize>,
    },
    /// `N OF (a, b, ...)`: at least `min` of the operands hold.
    AtLeast {
        min: u32,
        parts: Vec<Expr>,
        span: Range<usize>,
    },
    /// `count(a) >= N`: the number of distinct matches of `a`, compared.
    Count {
        inner: Box<Expr>,
        comparison: Comparison,
        span: Range<usize>,
    },
    /// `SENTENCE(a, b, ...)`: every operand matches inside one sentence.
    Sentence {
        parts: Vec<Expr>,
        span: Range<usize>,
    },
    /// `WEIGHTS(a:3, b:1) >= 4`: the weights of the operands that hold,
    /// summed and compared.
    Weights {
        items: Vec<(Expr, u32)>,
        comparison: Comparison,
        span: Range<usize>,
    },
}

/// `>= 3` and the like, as in `count(a) >= 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    pub op: CompareOp,
    pub value: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    AtLeast,
    MoreThan,
    Equal,
    AtMost,
    LessThan,
}

impl Comparison {
    /// Whether `count` satisfies the comparison.
    pub fn holds(self, count: u64) -> bool {
        let value = u64::from(self.value);
        match self.op {
            CompareOp::AtLeast => count >= value,
            CompareOp::MoreThan => count > value,
            CompareOp::Equal => count == value,
            CompareOp::AtMost => count <= value,
            CompareOp::LessThan => count < value,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            CompareOp::AtLeast => ">=",
            CompareOp::MoreThan => ">",
            CompareOp::Equal => "=",
            CompareOp::AtMost => "<=",
            CompareOp::LessThan => "<",
        };
        write!(f, "{op} {}", self.value)
    }
}

/// The functions: a name written right before `(`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Count,
    Sentence,
    Weights,
}

/// A leaf of the expression, with its position in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub kind: TermKind,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermKind {
    /// A word or a phrase, as written; `prefix` when it ended with `*`.
    Text { text: String, prefix: bool },
    /// `entity:ID`
    Entity(String),
    /// `class:NAME`
    Class(String),
    /// `list:NAME`
    List(String),
    /// `title:TERM`: the term, found in the article's title only.
    Title(Box<TermKind>),
    /// `/pattern/`: a regular expression on the original text.
    Regex(String),
}

/// A syntax error at a byte range of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: Range<usize>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a match expression.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let tokens = lex(source)?;
    if tokens.is_empty() {
        return Err(ParseError {
            message: "empty match expression".to_string(),
            span: 0..source.len(),
        });
    }
    let mut parser = Parser {
        tokens,
        position: 0,
        source_len: source.len(),
    };
    let expr = parser.parse_or()?;
    if let Some(token) = parser.peek() {
        let message = match token.kind {
            Lexeme::RParen => "unmatched ')'".to_string(),
            Lexeme::Comma => COMMA_OUTSIDE.to_string(),
            Lexeme::Weight(_) => WEIGHT_OUTSIDE.to_string(),
            _ => format!("unexpected {}", token.kind.describe()),
        };
        return Err(ParseError {
            message,
            span: token.span.clone(),
        });
    }
    Ok(expr)
}

const COMMA_OUTSIDE: &str = "',' only separates the operands of OF, SENTENCE, WEIGHTS and count (to search for a comma, quote the phrase)";
const WEIGHT_OUTSIDE: &str = "a weight (':3') only follows an operand of WEIGHTS(...) (to search for a word with a colon, quote it)";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lexeme {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Near(u32),
    Term(TermKind),
    Comma,
    Of,
    Compare(CompareOp),
    /// A function name and its opening parenthesis: `SENTENCE(`.
    Call(Function),
    /// `:3` after an operand of `WEIGHTS`.
    Weight(u32),
}

impl Lexeme {
    fn describe(&self) -> String {
        match self {
            Lexeme::LParen => "'('".to_string(),
            Lexeme::RParen => "')'".to_string(),
            Lexeme::And => "AND".to_string(),
            Lexeme::Or => "OR".to_string(),
            Lexeme::Not => "NOT".to_string(),
            Lexeme::Near(distance) => format!("NEAR/{distance}"),
            Lexeme::Term(_) => "term".to_string(),
            Lexeme::Comma => "','".to_string(),
            Lexeme::Of => "OF".to_string(),
            Lexeme::Compare(op) => format!(
                "'{}'",
                Comparison { op: *op, value: 0 }
                    .to_string()
                    .trim_end_matches(" 0")
            ),
            Lexeme::Call(Function::Count) => "count(".to_string(),
            Lexeme::Call(Function::Sentence) => "SENTENCE(".to_string(),
            Lexeme::Call(Function::Weights) => "WEIGHTS(".to_string(),
            Lexeme::Weight(weight) => format!("weight ':{weight}'"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Lexeme,
    span: Range<usize>,
}

fn is_open_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201C}' | '\u{201E}')
}

fn is_close_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201D}' | '\u{201C}')
}

fn lex(source: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut position = 0;
    while let Some(c) = source[position..].chars().next() {
        if c.is_whitespace() {
            position += c.len_utf8();
            continue;
        }
        let (token, end) = lex_one(source, position)?;
        tokens.push(token);
        position = end;
    }
    Ok(tokens)
}

/// The token starting at byte `start` (not whitespace), and where it ends.
fn lex_one(source: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let rest = &source[start..];
    let Some(c) = rest.chars().next() else {
        return Err(ParseError {
            message: "expected a term at the end of the expression".to_string(),
            span: start..start,
        });
    };
    if c == '(' || c == ')' {
        let kind = if c == '(' {
            Lexeme::LParen
        } else {
            Lexeme::RParen
        };
        return Ok((
            Token {
                kind,
                span: start..start + 1,
            },
            start + 1,
        ));
    }
    if c == ',' {
        return Ok((
            Token {
                kind: Lexeme::Comma,
                span: start..start + 1,
            },
            start + 1,
        ));
    }
    if let Some((op, length)) = comparison_at(rest) {
        return Ok((
            Token {
                kind: Lexeme::Compare(op),
                span: start..start + length,
            },
            start + length,
        ));
    }
    if rest.starts_with(TITLE_PREFIX) {
        return lex_title(source, start);
    }
    if c == '/' {
        return lex_regex(source, start);
    }
    if c == ':' {
        let digits = rest[1..]
            .find(|d: char| !d.is_ascii_digit())
            .map_or(rest.len() - 1, |index| index);
        if digits > 0 {
            let end = start + 1 + digits;
            let weight = source[start + 1..end]
                .parse::<u32>()
                .map_err(|_| ParseError {
                    message: "weight is too large".to_string(),
                    span: start..end,
                })?;
            return Ok((
                Token {
                    kind: Lexeme::Weight(weight),
                    span: start..end,
                },
                end,
            ));
        }
    }
    if is_open_quote(c) {
        let content_start = start + c.len_utf8();
        let Some((index, close)) = source[content_start..]
            .char_indices()
            .find(|&(_, inner)| is_close_quote(inner))
        else {
            return Err(ParseError {
                message: "unterminated phrase: missing closing '\"'".to_string(),
                span: start..source.len(),
            });
        };
        let content_end = content_start + index;
        let token_end = content_end + close.len_utf8();
        let span = start..token_end;
        let kind = text_term(&source[content_start..content_end], span.clone(), true)?;
        return Ok((Token { kind, span }, token_end));
    }
    let mut previous = None;
    let end = rest
        .char_indices()
        .find(|&(index, inner)| {
            let ends = inner.is_whitespace()
                || matches!(inner, '(' | ')' | '<' | '>' | '=')
                || is_open_quote(inner)
                || (inner == ',' && !is_digit_comma(previous, rest[index + 1..].chars().next()));
            previous = Some(inner);
            ends
        })
        .map_or(source.len(), |(index, _)| start + index);
    let end = start + weight_suffix_start(&source[start..end]).unwrap_or(end - start);
    let word = &source[start..end];
    if source[end..].starts_with('(') {
        let function = match word {
            "count" | "COUNT" => Some(Function::Count),
            "SENTENCE" => Some(Function::Sentence),
            "WEIGHTS" => Some(Function::Weights),
            _ => None,
        };
        if let Some(function) = function {
            return Ok((
                Token {
                    kind: Lexeme::Call(function),
                    span: start..end + 1,
                },
                end + 1,
            ));
        }
    }
    let span = start..end;
    let kind = word_lexeme(word, span.clone())?;
    Ok((Token { kind, span }, end))
}

/// Where a weight `:3` starts in `word` (`Tobruk:3`, `entity:minsk:2`), if
/// it ends with one; `list:3` is the list named "3".
fn weight_suffix_start(word: &str) -> Option<usize> {
    let colon = word.rfind(':')?;
    let digits = &word[colon + 1..];
    let before = &word[..colon];
    let is_name_prefix = matches!(before, "entity" | "class" | "list" | "title");
    (colon > 0
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !is_name_prefix)
        .then_some(colon)
}

/// A comma between two digits (`1,000`) is part of a term; any other comma
/// separates operands.
fn is_digit_comma(before: Option<char>, after: Option<char>) -> bool {
    before.is_some_and(|c| c.is_ascii_digit()) && after.is_some_and(|c| c.is_ascii_digit())
}

/// `>=`, `>`, `=`, `<=` or `<` at the start of `text`, and its length.
fn comparison_at(text: &str) -> Option<(CompareOp, usize)> {
    let op = if text.starts_with(">=") {
        (CompareOp::AtLeast, 2)
    } else if text.starts_with("<=") {
        (CompareOp::AtMost, 2)
    } else if text.starts_with('>') {
        (CompareOp::MoreThan, 1)
    } else if text.starts_with('<') {
        (CompareOp::LessThan, 1)
    } else if text.starts_with('=') {
        (CompareOp::Equal, 1)
    } else {
        return None;
    };
    Some(op)
}

/// `/pattern/`: up to the next `/` not preceded by a backslash; `\/` in the
/// pattern stands for `/`.
fn lex_regex(source: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let body_start = start + 1;
    let mut escaped = false;
    let mut close = None;
    for (index, c) in source[body_start..].char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => {
                close = Some(body_start + index);
                break;
            }
            _ => escaped = false,
        }
    }
    let Some(close) = close else {
        return Err(ParseError {
            message: "unterminated regex: missing closing '/'".to_string(),
            span: start..source.len(),
        });
    };
    let span = start..close + 1;
    let pattern = source[body_start..close].replace("\\/", "/");
    if pattern.is_empty() {
        return Err(ParseError {
            message: "empty regex".to_string(),
            span,
        });
    }
    Ok((
        Token {
            kind: Lexeme::Term(TermKind::Regex(pattern)),
            span: span.clone(),
        },
        span.end,
    ))
}

/// `title:` restricts the term right after it to the article's title.
const TITLE_PREFIX: &str = "title:";

/// `title:term`: the term (word, phrase, entity, class or list) must be
/// written right after the colon.
fn lex_title(source: &str, start: usize) -> Result<(Token, usize), ParseError> {
    let after = start + TITLE_PREFIX.len();
    let prefix_span = start..after;
    let next = source[after..].chars().next();
    if next.is_none_or(|c| c.is_whitespace() || c == '(' || c == ')') {
        let message = if next == Some('(') {
            "'title:' applies to one term, not a group: write title:a OR title:b"
        } else {
            "'title:' needs a term right after the colon"
        };
        return Err(ParseError {
            message: message.to_string(),
            span: prefix_span,
        });
    }
    if source[after..].starts_with(TITLE_PREFIX) {
        return Err(ParseError {
            message: "'title:' is written twice".to_string(),
            span: after..after + TITLE_PREFIX.len(),
        });
    }
    let (inner, end) = lex_one(source, after)?;
    match inner.kind {
        Lexeme::Term(kind) => Ok((
            Token {
                kind: Lexeme::Term(TermKind::Title(Box::new(kind))),
                span: start..end,
            },
            end,
        )),
        other => Err(ParseError {
            message: format!("'title:' needs a term, found {}", other.describe()),
            span: inner.span,
        }),
    }
}

fn word_lexeme(word: &str, span: Range<usize>) -> Result<Lexeme, ParseError> {
    match word {
        "AND" => return Ok(Lexeme::And),
        "OR" => return Ok(Lexeme::Or),
        "NOT" => return Ok(Lexeme::Not),
        "OF" => return Ok(Lexeme::Of),
        "NEAR" => {
            return Err(ParseError {
                message: "NEAR needs a distance in words, e.g. NEAR/5".to_string(),
                span,
            })
        }
        _ => {}
    }
    if let Some(distance) = word.strip_prefix("NEAR/") {
        return match distance.parse::<u32>() {
            Ok(distance) if distance <= 1000 => Ok(Lexeme::Near(distance)),
            _ => Err(ParseError {
                message: format!(
                    "invalid NEAR distance {distance:?}: expected a whole number of words from 0 to 1000"
                ),
                span,
            }),
        };
    }
    let is_operator_word = ["and", "or", "not", "near", "sentence"]
        .iter()
        .any(|operator| word.eq_ignore_ascii_case(operator))
        || word
            .get(..5)
            .is_some_and(|head| head.eq_ignore_ascii_case("near/"));
    if is_operator_word && word != word.to_ascii_uppercase() {
        return Err(ParseError {
            message: format!(
                "operators are upper case: write {} (to search for the word itself, quote it: \"{word}\")",
                word.to_ascii_uppercase()
            ),
            span,
        });
    }
    for (prefix, make) in [
        ("entity:", TermKind::Entity as fn(String) -> TermKind),
        ("class:", TermKind::Class),
        ("list:", TermKind::List),
    ] {
        if let Some(name) = word.strip_prefix(prefix) {
            if name.is_empty() {
                return Err(ParseError {
                    message: format!("'{prefix}' needs a name right after the colon"),
                    span,
                });
            }
            return Ok(Lexeme::Term(make(name.to_string())));
        }
    }
    text_term(word, span, false)
}

fn text_term(text: &str, span: Range<usize>, quoted: bool) -> Result<Lexeme, ParseError> {
    let (body, prefix) = match text.strip_suffix('*') {
        Some(body) => (body, true),
        None => (text, false),
    };
    if let Some(star) = body.find('*') {
        let offset = span.start + usize::from(quoted) + star;
        return Err(ParseError {
            message: "'*' is only allowed at the end of a word".to_string(),
            span: offset..offset + 1,
        });
    }
    if !body.chars().any(char::is_alphanumeric) {
        let what = if quoted { "phrase" } else { "term" };
        return Err(ParseError {
            message: format!("{what} {text:?} has no letters or digits"),
            span,
        });
    }
    Ok(Lexeme::Term(TermKind::Text {
        text: body.to_string(),
        prefix,
    }))
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    source_len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn advance(&mut self) -> Option<Token> {
        // Each token is read once: taken, not cloned (a term owns its text).
        let placeholder = Token {
            kind: Lexeme::Comma,
            span: 0..0,
        };
        let token = self
            .tokens
            .get_mut(self.position)
            .map(|t| std::mem::replace(t, placeholder));
        self.position += 1;
        token
    }

    fn end_span(&self) -> Range<usize> {
        self.source_len..self.source_len
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_and()?;
        let at_or = |parser: &Self| matches!(parser.peek().map(|t| &t.kind), Some(Lexeme::Or));
        if !at_or(self) {
            return Ok(first); // most operands: no vector to build
        }
        let mut alternatives = vec![first];
        while at_or(self) {
            self.advance();
            alternatives.push(self.parse_and()?);
        }
        Ok(collapse(alternatives, Expr::Or))
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        // Most operands are one part: the vector is built from a second on.
        let mut first = Some(self.parse_near()?);
        let mut parts = Vec::new();
        loop {
            match self.peek().map(|token| &token.kind) {
                Some(Lexeme::And) => {
                    self.advance();
                }
                Some(Lexeme::Term(_) | Lexeme::LParen | Lexeme::Not | Lexeme::Call(_)) => {}
                _ => break,
            }
            parts.extend(first.take());
            parts.push(self.parse_near()?);
        }
        match first {
            Some(only) => Ok(only),
            None => Ok(collapse(parts, Expr::And)),
        }
    }

    fn parse_near(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_unary()?;
        while let Some(Token {
            kind: Lexeme::Near(distance),
            span,
        }) = self.peek().cloned()
        {
            self.advance();
            let right = self.parse_unary()?;
            left = Expr::Near {
                left: Box::new(left),
                right: Box::new(right),
                distance,
                span,
            };
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if matches!(
            self.peek(),
            Some(Token {
                kind: Lexeme::Not,
                ..
            })
        ) {
            self.advance();
            return Ok(Expr::Not(Box::new(self.parse_unary()?)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let Some(token) = self.advance() else {
            return Err(ParseError {
                message: "expected a term at the end of the expression".to_string(),
                span: self.end_span(),
            });
        };
        match token.kind {
            Lexeme::Term(TermKind::Text {
                ref text,
                prefix: false,
            }) if matches!(self.peek().map(|t| &t.kind), Some(Lexeme::Of)) => {
                self.parse_of(text, token.span.clone())
            }
            Lexeme::Term(kind) => Ok(Expr::Term(Term {
                kind,
                span: token.span,
            })),
            Lexeme::Of => Err(ParseError {
                message: "OF needs a number before it, e.g. 2 OF (a, b, c)".to_string(),
                span: token.span,
            }),
            Lexeme::Call(Function::Sentence) => {
                let parts = self.parse_arguments(&token.span)?;
                if parts.len() < 2 {
                    return Err(ParseError {
                        message: "SENTENCE needs at least two operands, e.g. SENTENCE(a, b)"
                            .to_string(),
                        span: token.span,
                    });
                }
                Ok(Expr::Sentence {
                    parts,
                    span: token.span,
                })
            }
            Lexeme::Call(Function::Weights) => {
                let items = self.parse_weighted(&token.span)?;
                let comparison = self.parse_comparison("WEIGHTS(...)", &token.span)?;
                Ok(Expr::Weights {
                    items,
                    comparison,
                    span: token.span,
                })
            }
            Lexeme::Weight(_) => Err(ParseError {
                message: WEIGHT_OUTSIDE.to_string(),
                span: token.span,
            }),
            Lexeme::Call(Function::Count) => {
                let mut parts = self.parse_arguments(&token.span)?;
                if parts.len() != 1 {
                    return Err(ParseError {
                        message: "count takes one operand, e.g. count(Tobruk) >= 3".to_string(),
                        span: token.span,
                    });
                }
                let comparison = self.parse_comparison("count(...)", &token.span)?;
                Ok(Expr::Count {
                    inner: Box::new(parts.remove(0)),
                    comparison,
                    span: token.span,
                })
            }
            Lexeme::LParen => {
                let inner = self.parse_or()?;
                match self.advance() {
                    Some(Token {
                        kind: Lexeme::RParen,
                        ..
                    }) => Ok(inner),
                    Some(Token {
                        kind: Lexeme::Comma,
                        span,
                    }) => Err(ParseError {
                        message: COMMA_OUTSIDE.to_string(),
                        span,
                    }),
                    _ => Err(ParseError {
                        message: "'(' is never closed".to_string(),
                        span: token.span,
                    }),
                }
            }
            other => Err(ParseError {
                message: format!("expected a term, found {}", other.describe()),
                span: token.span,
            }),
        }
    }
}

impl Parser {
    /// `N OF ( a, b, ... )` after the number `N` (already read).
    fn parse_of(&mut self, number: &str, number_span: Range<usize>) -> Result<Expr, ParseError> {
        let of = self
            .advance()
            .map(|t| t.span)
            .unwrap_or_else(|| self.end_span());
        let span = number_span.start..of.end;
        let min = number.parse::<u32>().ok().filter(|&n| n >= 1);
        let Some(min) = min else {
            return Err(ParseError {
                message: format!("OF needs a whole number of at least 1 before it, not {number:?}"),
                span: number_span,
            });
        };
        let open = match self.advance() {
            Some(Token {
                kind: Lexeme::LParen,
                span,
            }) => span,
            _ => {
                return Err(ParseError {
                    message: "OF needs its operands in parentheses, e.g. 2 OF (a, b, c)"
                        .to_string(),
                    span: of,
                })
            }
        };
        let parts = self.parse_arguments(&open)?;
        if min as usize > parts.len() {
            return Err(ParseError {
                message: format!("{min} OF ({} operands) can never hold", parts.len()),
                span: number_span,
            });
        }
        Ok(Expr::AtLeast { min, parts, span })
    }

    /// Operands separated by commas, up to the `)` that closes `open`.
    fn parse_arguments(&mut self, open: &Range<usize>) -> Result<Vec<Expr>, ParseError> {
        let mut parts = vec![self.parse_or()?];
        loop {
            match self.advance() {
                Some(Token {
                    kind: Lexeme::Comma,
                    ..
                }) => parts.push(self.parse_or()?),
                Some(Token {
                    kind: Lexeme::RParen,
                    ..
                }) => return Ok(parts),
                None => {
                    return Err(ParseError {
                        message: "'(' is never closed".to_string(),
                        span: open.clone(),
                    })
                }
                Some(Token {
                    kind: Lexeme::Weight(_),
                    span,
                }) => {
                    return Err(ParseError {
                        message: WEIGHT_OUTSIDE.to_string(),
                        span,
                    })
                }
                Some(other) => {
                    return Err(ParseError {
                        message: format!("expected ',' or ')', found {}", other.kind.describe()),
                        span: other.span,
                    })
                }
            }
        }
    }

    /// `a:3, b:1)` after `WEIGHTS(`.
    fn parse_weighted(&mut self, open: &Range<usize>) -> Result<Vec<(Expr, u32)>, ParseError> {
        let mut items = Vec::new();
        loop {
            let item = self.parse_or()?;
            let weight =
                match self.advance() {
                    Some(Token {
                        kind: Lexeme::Weight(weight),
                        ..
                    }) => weight,
                    other => return Err(ParseError {
                        message:
                            "each operand of WEIGHTS needs a weight right after it, e.g. Tobruk:3"
                                .to_string(),
                        span: other.map_or(self.end_span(), |t| t.span),
                    }),
                };
            items.push((item, weight));
            match self.advance() {
                Some(Token {
                    kind: Lexeme::Comma,
                    ..
                }) => continue,
                Some(Token {
                    kind: Lexeme::RParen,
                    ..
                }) => return Ok(items),
                None => {
                    return Err(ParseError {
                        message: "'(' is never closed".to_string(),
                        span: open.clone(),
                    })
                }
                Some(other) => {
                    return Err(ParseError {
                        message: format!("expected ',' or ')', found {}", other.kind.describe()),
                        span: other.span,
                    })
                }
            }
        }
    }

    /// `>= N` after `what`.
    fn parse_comparison(
        &mut self,
        what: &str,
        at: &Range<usize>,
    ) -> Result<Comparison, ParseError> {
        let op = match self.advance() {
            Some(Token {
                kind: Lexeme::Compare(op),
                ..
            }) => op,
            other => {
                return Err(ParseError {
                    message: format!("{what} needs a comparison after it, e.g. >= 3"),
                    span: other.map_or(at.clone(), |t| t.span),
                })
            }
        };
        match self.advance() {
            Some(Token {
                kind:
                    Lexeme::Term(TermKind::Text {
                        text,
                        prefix: false,
                    }),
                span,
            }) => text
                .parse::<u32>()
                .map(|value| Comparison { op, value })
                .map_err(|_| ParseError {
                    message: format!("expected a whole number after the comparison, not {text:?}"),
                    span,
                }),
            other => Err(ParseError {
                message: "expected a whole number after the comparison".to_string(),
                span: other.map_or(self.end_span(), |t| t.span),
            }),
        }
    }
}

fn collapse(mut items: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.remove(0)
    } else {
        make(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders an expression compactly so expectations read like the input.
    fn show(expr: &Expr) -> String {
        match expr {
            Expr::Term(term) => match &term.kind {
                TermKind::Text { text, prefix } => {
                    format!("{text:?}{}", if *prefix { "*" } else { "" })
                }
                TermKind::Entity(name) => format!("entity:{name}"),
                TermKind::Class(name) => format!("class:{name}"),
                TermKind::List(name) => format!("list:{name}"),
                TermKind::Regex(pattern) => format!("/{pattern}/"),
                TermKind::Title(inner) => format!(
                    "title:{}",
                    show(&Expr::Term(Term {
                        kind: (**inner).clone(),
                        span: 0..0
                    }))
                ),
            },
            Expr::And(parts) => format!(
                "(and {})",
                parts.iter().map(show).collect::<Vec<_>>().join(" ")
            ),
            Expr::Or(parts) => format!(
                "(or {})",
                parts.iter().map(show).collect::<Vec<_>>().join(" ")
            ),
            Expr::Not(inner) => format!("(not {})", show(inner)),
            Expr::Near {
                left,
                right,
                distance,
                ..
            } => format!("(near/{distance} {} {})", show(left), show(right)),
            Expr::AtLeast { min, parts, .. } => format!(
                "({min}-of {})",
                parts.iter().map(show).collect::<Vec<_>>().join(" ")
            ),
            Expr::Count {
                inner, comparison, ..
            } => format!("(count {} {comparison})", show(inner)),
            Expr::Sentence { parts, .. } => format!(
                "(sentence {})",
                parts.iter().map(show).collect::<Vec<_>>().join(" ")
            ),
            Expr::Weights {
                items, comparison, ..
            } => format!(
                "(weights {} {comparison})",
                items
                    .iter()
                    .map(|(item, weight)| format!("{}:{weight}", show(item)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    #[test]
    fn parses_the_spec_forms_with_the_right_precedence() {
        let cases = [
            ("Tobruk", r#""Tobruk""#),
            (r#""air defense""#, r#""air defense""#),
            ("visit*", r#""visit"*"#),
            (
                "entity:minsk NEAR/12 list:visit",
                "(near/12 entity:minsk list:visit)",
            ),
            ("class:air-defense", "class:air-defense"),
            ("a b", r#"(and "a" "b")"#),
            ("a AND b OR c", r#"(or (and "a" "b") "c")"#),
            ("a OR b c", r#"(or "a" (and "b" "c"))"#),
            ("NOT a b", r#"(and (not "a") "b")"#),
            ("a AND NOT b", r#"(and "a" (not "b"))"#),
            ("(a OR b) NEAR/3 c", r#"(near/3 (or "a" "b") "c")"#),
            ("a NEAR/1 b NEAR/2 c", r#"(near/2 (near/1 "a" "b") "c")"#),
            ("a NEAR/5 b OR c", r#"(or (near/5 "a" "b") "c")"#),
            ("“House of Belarus”", r#""House of Belarus""#),
            (r#""air defen*""#, r#""air defen"*"#),
            (r#"Tor-M2 "and" Minsk"#, r#"(and "Tor-M2" "and" "Minsk")"#),
            ("((Tobruk))", r#""Tobruk""#),
            ("title:Tobruk", r#"title:"Tobruk""#),
            (
                r#"title:"air base" Minsk"#,
                r#"(and title:"air base" "Minsk")"#,
            ),
            (
                "title:entity:minsk OR title:visit*",
                r#"(or title:entity:minsk title:"visit"*)"#,
            ),
            ("subtitle:x", r#""subtitle:x""#),
            ("2 OF (a, b, c)", r#"(2-of "a" "b" "c")"#),
            (
                "2 OF (a NEAR/2 b, c OR d, e f) g",
                r#"(and (2-of (near/2 "a" "b") (or "c" "d") (and "e" "f")) "g")"#,
            ),
            ("count(Tobruk) >= 3", r#"(count "Tobruk" >= 3)"#),
            ("count(entity:minsk)>2", "(count entity:minsk > 2)"),
            ("COUNT(a OR b) = 1", r#"(count (or "a" "b") = 1)"#),
            ("count(a) <= 1 b", r#"(and (count "a" <= 1) "b")"#),
            ("count(a) < 4 OR b", r#"(or (count "a" < 4) "b")"#),
            (
                "SENTENCE(entity:minsk, list:visit)",
                "(sentence entity:minsk list:visit)",
            ),
            (
                "Tobruk SENTENCE(a,b)",
                r#"(and "Tobruk" (sentence "a" "b"))"#,
            ),
            ("count", r#""count""#),
            ("vote count (a)", r#"(and "vote" "count" "a")"#),
            ("“House of Belarus”", r#""House of Belarus""#),
            ("\"Minsk, Belarus\"", r#""Minsk, Belarus""#),
            ("1,000 troops", r#"(and "1,000" "troops")"#),
            (r"/Tor-?M2/", "/Tor-?M2/"),
            (r"/9K3\d{2}/ OR /a\/b (c)/", r"(or /9K3\d{2}/ /a/b (c)/)"),
            (
                r"title:/^Haftar/ NEAR/3 Minsk",
                r#"(near/3 title:/^Haftar/ "Minsk")"#,
            ),
            ("24/7 NEAR/2 x", r#"(near/2 "24/7" "x")"#),
            (
                r#"WEIGHTS(Tobruk:3, "air base":2, Benghazi:1) >= 4"#,
                r#"(weights "Tobruk":3 "air base":2 "Benghazi":1 >= 4)"#,
            ),
            (
                "WEIGHTS(entity:minsk:2, list:visit :1, (a OR b):5, list:3:1) > 2",
                r#"(weights entity:minsk:2 list:visit:1 (or "a" "b"):5 list:3:1 > 2)"#,
            ),
        ];
        for (source, expected) in cases {
            let expr = parse(source).unwrap_or_else(|e| panic!("{source:?}: {e:?}"));
            assert_eq!(show(&expr), expected, "source {source:?}");
        }
    }

    #[test]
    fn terms_remember_where_they_are() {
        let Expr::Near {
            left, right, span, ..
        } = parse("entity:minsk NEAR/12 list:visit").unwrap()
        else {
            panic!("expected NEAR");
        };
        assert_eq!(span, 13..20);
        let (Expr::Term(left), Expr::Term(right)) = (*left, *right) else {
            panic!("expected terms");
        };
        assert_eq!(left.span, 0..12);
        assert_eq!(right.span, 21..31);
    }

    #[test]
    fn errors_point_at_the_offending_bytes() {
        let cases: &[(&str, &str, Range<usize>)] = &[
            ("a or b", "operators are upper case: write OR (to search for the word itself, quote it: \"or\")", 2..4),
            ("a Near/5 b", "operators are upper case: write NEAR/5 (to search for the word itself, quote it: \"Near/5\")", 2..8),
            ("Минск sentence Лукашенко", "operators are upper case: write SENTENCE (to search for the word itself, quote it: \"sentence\")", 11..19),
            ("", "empty match expression", 0..0),
            ("   ", "empty match expression", 0..3),
            ("a AND", "expected a term at the end of the expression", 5..5),
            ("(a OR b", "'(' is never closed", 0..1),
            ("a OR b)", "unmatched ')'", 6..7),
            ("a NEAR b", "NEAR needs a distance in words, e.g. NEAR/5", 2..6),
            ("a NEAR/x b", "invalid NEAR distance \"x\": expected a whole number of words from 0 to 1000", 2..8),
            ("vis*t", "'*' is only allowed at the end of a word", 3..4),
            ("\"air defense", "unterminated phrase: missing closing '\"'", 0..12),
            ("entity: x", "'entity:' needs a name right after the colon", 0..7),
            ("a OR OR b", "expected a term, found OR", 5..7),
            ("Tobruk -- ", "term \"--\" has no letters or digits", 7..9),
            ("a title: Tobruk", "'title:' needs a term right after the colon", 2..8),
            ("title:(a OR b)", "'title:' applies to one term, not a group: write title:a OR title:b", 0..6),
            ("a title:title:b", "'title:' is written twice", 8..14),
            ("title:OR", "'title:' needs a term, found OR", 6..8),
            ("title:entity:", "'entity:' needs a name right after the colon", 6..13),
            ("title:\"air", "unterminated phrase: missing closing '\"'", 6..10),
            ("Tobruk, Minsk", "',' only separates the operands of OF, SENTENCE, WEIGHTS and count (to search for a comma, quote the phrase)", 6..7),
            ("OF (a, b)", "OF needs a number before it, e.g. 2 OF (a, b, c)", 0..2),
            ("0 OF (a, b)", "OF needs a whole number of at least 1 before it, not \"0\"", 0..1),
            ("3 OF (a, b)", "3 OF (2 operands) can never hold", 0..1),
            ("2 OF a, b", "OF needs its operands in parentheses, e.g. 2 OF (a, b, c)", 2..4),
            ("2 OF (a, b", "'(' is never closed", 5..6),
            ("2 OF (a, b c AND)", "expected a term, found ')'", 16..17),
            ("2 OF (a, (b, c)", COMMA_OUTSIDE, 11..12),
            ("2 OF (a, b c", "'(' is never closed", 5..6),
            ("SENTENCE(a, b OR)", "expected a term, found ')'", 16..17),
            ("SENTENCE(a b NOT)", "expected a term, found ')'", 16..17),
            ("count(a)", "count(...) needs a comparison after it, e.g. >= 3", 0..6),
            ("count(a) >= x", "expected a whole number after the comparison, not \"x\"", 12..13),
            ("count(a) >=", "expected a whole number after the comparison", 11..11),
            ("count(a, b) > 1", "count takes one operand, e.g. count(Tobruk) >= 3", 0..6),
            ("SENTENCE(a)", "SENTENCE needs at least two operands, e.g. SENTENCE(a, b)", 0..9),
            ("Sentence(a, b)", "operators are upper case: write SENTENCE (to search for the word itself, quote it: \"Sentence\")", 0..8),
            ("a >= 2", "unexpected '>='", 2..4),
            ("a /Tor-?M2", "unterminated regex: missing closing '/'", 2..10),
            (r"a /x\/", "unterminated regex: missing closing '/'", 2..6),
            ("a // b", "empty regex", 2..4),
            ("WEIGHTS(Tobruk:3, Benghazi) >= 3", "each operand of WEIGHTS needs a weight right after it, e.g. Tobruk:3", 26..27),
            ("WEIGHTS(Tobruk:3)", "WEIGHTS(...) needs a comparison after it, e.g. >= 3", 0..8),
            ("WEIGHTS(Tobruk:3 Minsk:1) >= 3", "expected ',' or ')', found term", 17..22),
            ("Tobruk:3", WEIGHT_OUTSIDE, 6..8),
            ("2 OF (a:1, b)", WEIGHT_OUTSIDE, 7..9),
            ("WEIGHTS(a:99999999999) >= 1", "weight is too large", 9..21),
        ];
        for (source, message, span) in cases {
            let error = parse(source).expect_err(source);
            assert_eq!(error.message, *message, "source {source:?}");
            assert_eq!(error.span, *span, "source {source:?}");
        }
    }
}
