//! Parsing of the attribute's arguments: `("功能", "model", key = value, …)`.

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Path, Token};

/// Every named argument, in the order the docs list them.
const KEYS: &[&str] = &[
    "function",
    "model",
    "provider",
    "user_id",
    "anchor_id",
    "session_id",
    "extract",
    "monitor",
    "context",
    "crate",
    "budget_guard",
];

/// The parsed arguments of one `#[track_ai_usage(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// App feature (功能) name; defaults to the function's own name.
    pub function: Option<LitStr>,
    /// Model name; defaults to the response's model, else `"unknown"`.
    pub model: Option<LitStr>,
    /// Provider whose price applies (`anthropic`, an API base URL …).
    pub provider: Option<LitStr>,
    /// Explicit user id expression.
    pub user_id: Option<Expr>,
    /// Explicit anchor id expression.
    pub anchor_id: Option<Expr>,
    /// Explicit session id expression.
    pub session_id: Option<Expr>,
    /// Custom extraction function or closure.
    pub extract: Option<Expr>,
    /// A non-global monitor.
    pub monitor: Option<Expr>,
    /// Name of the parameter that implements `UsageContext`.
    pub context: Option<Ident>,
    /// Path of the facade crate, for renamed dependencies.
    pub krate: Option<Path>,
    /// `budget_guard`: refuse the call (return `Err(BudgetExceeded.into())`)
    /// when a matching budget is at its hard limit.
    pub budget_guard: Option<Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut positional = 0usize;
        let mut seen_named = false;
        while !input.is_empty() {
            if input.peek(Lit) {
                let lit: Lit = input.parse()?;
                if seen_named {
                    return Err(syn::Error::new(
                        lit.span(),
                        "positional arguments go first: write \
                         `#[track_ai_usage(\"功能\", \"model\", key = value)]`",
                    ));
                }
                let Lit::Str(s) = lit else {
                    return Err(positional_not_a_string(&lit, positional));
                };
                match positional {
                    0 => args.function = Some(non_empty(s, "function")?),
                    1 => args.model = Some(non_empty(s, "model")?),
                    _ => {
                        return Err(syn::Error::new(
                            s.span(),
                            "at most two positional arguments (function, model); \
                             give ids as `user_id = …`, `anchor_id = …`, `session_id = …`",
                        ))
                    }
                }
                positional += 1;
            } else if input.peek(Ident::peek_any) {
                let key = input.call(Ident::parse_any)?;
                if key == "budget_guard" && !input.peek(Token![=]) {
                    seen_named = true;
                    set(&mut args.budget_guard, key.clone(), &key)?;
                } else if !input.peek(Token![=]) {
                    return Err(bare_ident_error(&key));
                } else {
                    input.parse::<Token![=]>()?;
                    if input.is_empty() || input.peek(Token![,]) {
                        return Err(syn::Error::new(
                            key.span(),
                            format!("`{key} =` needs a value after `=`, or remove `{key}`"),
                        ));
                    }
                    seen_named = true;
                    args.parse_named(&key, input, positional)?;
                }
            } else {
                let tt: proc_macro2::TokenTree = input.parse()?;
                return Err(syn::Error::new(
                    tt.span(),
                    format!(
                        "unexpected `{tt}`: arguments are `\"功能\"`, `\"model\"` or `key = value`, \
                         e.g. `#[track_ai_usage(\"实时分析\", \"qwen-plus\", session_id = sid)]`"
                    ),
                ));
            }
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(
                    "expected `,` here: separate the arguments with commas, e.g. \
                     `#[track_ai_usage(\"实时分析\", \"qwen-plus\", session_id = sid)]`",
                ));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

impl Args {
    /// `positional`: how many positional arguments came before, to explain
    /// a `function`/`model` key that repeats one of them.
    fn parse_named(
        &mut self,
        key: &Ident,
        input: ParseStream<'_>,
        positional: usize,
    ) -> syn::Result<()> {
        let name = key.to_string();
        match name.as_str() {
            "function" => {
                let v = literal_name(input, "function", "实时分析")?;
                if positional >= 1 {
                    return Err(given_positionally(key, "first"));
                }
                set(&mut self.function, v, key)
            }
            "model" => {
                let v = literal_name(input, "model", "qwen-plus")?;
                if positional >= 2 {
                    return Err(given_positionally(key, "second"));
                }
                set(&mut self.model, v, key)
            }
            "provider" => {
                let v = literal_name(input, "provider", "anthropic")?;
                set(&mut self.provider, v, key)
            }
            "user_id" => set(&mut self.user_id, input.parse()?, key),
            "anchor_id" => set(&mut self.anchor_id, input.parse()?, key),
            "session_id" => set(&mut self.session_id, input.parse()?, key),
            "extract" => {
                let e: Expr = input.parse()?;
                // A string here is the most likely confusion (serde style).
                if let Expr::Lit(l) = &e {
                    return Err(syn::Error::new(
                        l.span(),
                        "`extract` takes a function path or closure, not a literal: \
                         `extract = my_tokens` with `fn my_tokens(ret: &Ret) -> impl UsageSource`",
                    ));
                }
                set(&mut self.extract, e, key)
            }
            "monitor" => set(&mut self.monitor, input.parse()?, key),
            "context" => {
                let e: Expr = input.parse()?;
                let ident = match &e {
                    Expr::Path(p) if p.attrs.is_empty() && p.qself.is_none() => {
                        p.path.get_ident().cloned()
                    }
                    _ => None,
                };
                if let Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) = &e
                {
                    return Err(syn::Error::new(
                        s.span(),
                        format!(
                            "`context` takes the parameter's name unquoted: `context = {}`",
                            s.value()
                        ),
                    ));
                }
                let Some(ident) = ident else {
                    return Err(syn::Error::new_spanned(
                        &e,
                        "`context` takes the name of a parameter, not an expression: \
                         `context = ctx` where `ctx: &LiveContext` is a parameter whose type \
                         implements `UsageContext`; for any other value pass the ids \
                         themselves (`session_id = …`)",
                    ));
                };
                set(&mut self.context, ident, key)
            }
            "crate" => {
                let path = if input.peek(LitStr) {
                    let s: LitStr = input.parse()?;
                    s.parse_with(Path::parse_mod_style).map_err(|_| {
                        syn::Error::new(
                            s.span(),
                            "`crate` must be the path of the `ai_usage_monitor` crate as \
                             renamed in your Cargo.toml, e.g. `crate = \"::my_monitor\"`",
                        )
                    })?
                } else {
                    input.call(Path::parse_mod_style)?
                };
                set(&mut self.krate, path, key)
            }
            "budget_guard" => Err(syn::Error::new(
                key.span(),
                "`budget_guard` is a flag without a value: write `budget_guard`, e.g. \
                 `#[track_ai_usage(\"实时分析\", \"qwen-plus\", budget_guard)]`",
            )),
            _ => Err(syn::Error::new(key.span(), unknown_key_message(&name))),
        }
    }
}

/// `model = …` after a second positional argument (which is the model).
fn given_positionally(key: &Ident, which: &str) -> syn::Error {
    syn::Error::new(
        key.span(),
        format!(
            "`{key}` is given twice: the {which} positional argument is already the {key}; \
             keep one"
        ),
    )
}

/// Stores `value` unless the key was already given (positionally or by name).
fn set<T>(slot: &mut Option<T>, value: T, key: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` is given twice; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `function` and `model` must be non-empty string literals: they are stored
/// as `&'static str` so the common call never allocates for them.
fn literal_name(input: ParseStream<'_>, what: &str, example: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return non_empty(input.parse()?, what);
    }
    let e: Expr = input.parse()?;
    let msg = match &e {
        // `model = 3`: a literal of another type, so quoting it is the fix.
        Expr::Lit(l) => format!(
            "`{what}` must be a string literal: write `{what} = \"{}\"`",
            l.lit.to_token_stream()
        ),
        _ => format!(
            "`{what}` must be a string literal, e.g. `{what} = \"{example}\"`; \
             for a name known only at run time call `UsageMonitor::record` yourself"
        ),
    };
    Err(syn::Error::new_spanned(&e, msg))
}

/// A positional argument that is a literal but not a string (`3`, `true`).
fn positional_not_a_string(lit: &Lit, position: usize) -> syn::Error {
    let what = match position {
        0 => "the function name (first argument)",
        1 => "the model name (second argument)",
        _ => {
            return syn::Error::new(
                lit.span(),
                "at most two positional arguments (function, model); \
                 give ids as `user_id = …`, `anchor_id = …`, `session_id = …`",
            )
        }
    };
    syn::Error::new(
        lit.span(),
        format!(
            "{what} must be a string literal: write `\"{}\"`, e.g. \
             `#[track_ai_usage(\"实时分析\", \"qwen-plus\")]`",
            lit.to_token_stream()
        ),
    )
}

fn non_empty(s: LitStr, what: &str) -> syn::Result<LitStr> {
    if s.value().trim().is_empty() {
        return Err(syn::Error::new(
            s.span(),
            format!(
                "the {what} name must not be empty; give a name or leave the argument out \
                 (the {what} then defaults to {})",
                if what == "function" {
                    "the decorated function's name"
                } else {
                    "the response's model, else \"unknown\""
                }
            ),
        ));
    }
    Ok(s)
}

fn bare_ident_error(key: &Ident) -> syn::Error {
    let name = key.to_string();
    let msg = if KEYS.contains(&name.as_str()) {
        format!("`{name}` needs a value: write `{name} = …`")
    } else if let Some(key) = suggest(&name) {
        format!(
            "`{name}` is not an argument; arguments are `key = value`: did you mean `{key} = …`?"
        )
    } else {
        format!(
            "expected a string literal or `key = value`; if `{name}` is the function or model \
             name, quote it: `\"{name}\"`"
        )
    };
    syn::Error::new(key.span(), msg)
}

/// A likely intended key for a misspelt or aliased one.
fn suggest(name: &str) -> Option<&'static str> {
    let alias = match name {
        "name" | "func" | "feature" | "function_name" => Some("function"),
        "model_name" => Some("model"),
        "user" | "uid" => Some("user_id"),
        "anchor" => Some("anchor_id"),
        "session" | "sid" => Some("session_id"),
        "extract_tokens" | "extractor" => Some("extract"),
        "ctx" => Some("context"),
        _ => None,
    };
    alias.or_else(|| KEYS.iter().copied().find(|k| edit_distance(k, name) <= 2))
}

fn unknown_key_message(name: &str) -> String {
    let guess = suggest(name);
    let mut msg = format!(
        "unknown argument `{name}`; expected one of: {}",
        KEYS.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(g) = guess {
        msg.push_str(&format!("; did you mean `{g}`?"));
    }
    msg
}

/// Levenshtein distance, for "did you mean" hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positional_and_named() {
        let a: Args =
            syn::parse_str(r#""实时分析", "qwen-plus", session_id = sid, crate = "::x""#).unwrap();
        assert_eq!(a.function.unwrap().value(), "实时分析");
        assert_eq!(a.model.unwrap().value(), "qwen-plus");
        assert!(a.session_id.is_some());
        assert!(a.krate.is_some());
    }

    #[test]
    fn rejects_misuse() {
        for bad in [
            r#""a", "b", "c""#,
            r#"model = "a", "b""#,
            r#""a", function = "b""#,
            r#"function = NAME"#,
            r#"sesion_id = x"#,
            r#""""#,
            r#"12"#,
        ] {
            assert!(syn::parse_str::<Args>(bad).is_err(), "{bad}");
        }
        let e = syn::parse_str::<Args>("sesion_id = x").err().unwrap();
        assert!(e.to_string().contains("did you mean `session_id`"));
    }

    /// The error message for `bad`, which must be rejected.
    fn error_of(bad: &str) -> String {
        match syn::parse_str::<Args>(bad) {
            Ok(_) => panic!("`{bad}` was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn messages_name_the_fix() {
        for (bad, expect) in [
            ("model = 3", "write `model = \"3\"`"),
            (
                r#""f", 4"#,
                "the model name (second argument) must be a string literal",
            ),
            (
                "7",
                "the function name (first argument) must be a string literal",
            ),
            ("user_id = , model = \"m\"", "`user_id =` needs a value"),
            ("session_id =", "`session_id =` needs a value"),
            (r#""f" "m""#, "expected `,` here"),
            (
                "context = self.ctx",
                "`context` takes the name of a parameter",
            ),
            (r#"context = "ctx""#, "unquoted: `context = ctx`"),
            (r#"crate = "a b""#, "`crate` must be the path"),
            (r#"model = """#, "the model name must not be empty"),
            (r#""f", "m", "s""#, "at most two positional arguments"),
            (r#""f", "m", 3"#, "at most two positional arguments"),
            (
                r#""f", function = "g""#,
                "the first positional argument is already",
            ),
            (
                r#""f", "m", model = "n""#,
                "the second positional argument is already",
            ),
            (
                r#"model = "m", model = "n""#,
                "`model` is given twice; keep one",
            ),
            ("model", "`model` needs a value: write `model = …`"),
            ("session", "did you mean `session_id = …`?"),
            (r#"&"f""#, "unexpected `&`"),
        ] {
            let msg = error_of(bad);
            assert!(msg.contains(expect), "`{bad}`: {msg}");
        }
    }

    #[test]
    fn context_accepts_a_name_or_self() {
        let a: Args = syn::parse_str("context = ctx").unwrap();
        assert_eq!(a.context.unwrap(), "ctx");
        let a: Args = syn::parse_str("context = self").unwrap();
        assert_eq!(a.context.unwrap(), "self");
    }
}
