//! What a cleanup closure would capture. It sits in the function, where the arguments are in
//! scope: one that uses them would capture them, which a cleanup cannot (it may run once the
//! function's frame is gone, on another thread). Said here, with what to do instead, rather
//! than as the compiler's "expected fn pointer, found closure".
//!
//! A name counts as captured only if the closure never binds it itself (as an argument, in a
//! `let`, in a pattern): a false alarm would refuse a closure that compiles, while a capture
//! missed here is still refused by the compiler. Macros are read too: their arguments as
//! expressions where they parse so (`matches!`'s second as a pattern), a format string's
//! `{name}`, and otherwise each identifier of their tokens.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, ExprClosure, Lit, Pat, Signature, Token};

/// Refuses `closure` if it uses an argument of the function `sig`.
pub(crate) fn check(closure: &ExprClosure, sig: &Signature) -> syn::Result<()> {
    let mut arguments = Names::default();
    for input in &sig.inputs {
        arguments.visit_fn_arg(input);
    }
    let mut names = Names::default();
    for input in &closure.inputs {
        names.visit_pat(input);
    }
    names.visit_expr(&closure.body);
    let captured = names
        .used
        .iter()
        .find(|(name, _)| arguments.bound.contains(name) && !names.bound.contains(name));
    match captured {
        None => Ok(()),
        Some((used, span)) => Err(syn::Error::new(
            *span,
            format!(
                "a cleanup cannot capture `{used}`, an argument of `{function}`: it may run once `{function}`'s frame is gone, on another thread; for state made at run time, make a guard in `{function}`: `let _cleanup = finally::guard(move |exit| ...);`",
                function = sig.ident
            ),
        )),
    }
}

/// The names a piece of code binds, and those it uses, with where.
#[derive(Default)]
struct Names {
    bound: Vec<String>,
    used: Vec<(String, Span)>,
}

impl Names {
    fn use_ident(&mut self, ident: &Ident) {
        self.used.push((ident.to_string(), ident.span()));
    }

    /// A macro's arguments: expressions where they parse so, else each identifier.
    fn visit_macro_body(&mut self, mac: &syn::Macro) {
        let is_matches = mac
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "matches");
        if is_matches
            && mac
                .parse_body_with(|input: ParseStream| self.matches(input))
                .is_ok()
        {
            return;
        }
        let arguments = Punctuated::<Expr, Token![,]>::parse_terminated;
        match mac.parse_body_with(arguments) {
            Ok(arguments) => {
                for argument in &arguments {
                    self.visit_expr(argument);
                }
                let format = arguments.iter().find_map(|argument| match argument {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Str(format),
                        ..
                    }) => Some(format),
                    _ => None,
                });
                if let Some(format) = format {
                    for name in format_arguments(&format.value()) {
                        self.used.push((name, format.span()));
                    }
                }
            }
            Err(_) => self.tokens(mac.tokens.clone()),
        }
    }

    /// `matches!(expression, pattern if guard)`: what the pattern binds is the closure's own.
    fn matches(&mut self, input: ParseStream) -> syn::Result<()> {
        let scrutinee: Expr = input.parse()?;
        input.parse::<Token![,]>()?;
        let pattern = Pat::parse_multi_with_leading_vert(input)?;
        let guard = match input.parse::<Option<Token![if]>>()? {
            Some(_) => Some(input.parse::<Expr>()?),
            None => None,
        };
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("more than `matches!` takes"));
        }
        self.visit_expr(&scrutinee);
        self.visit_pat(&pattern);
        if let Some(guard) = &guard {
            self.visit_expr(guard);
        }
        Ok(())
    }

    /// Tokens that are not expressions: each identifier that is not a field, a path's later
    /// segment or a macro's name.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) => {
                    let after_dot_or_path = i > 0 && is_punct(&tokens[i - 1], &['.', ':']);
                    let before_bang = tokens.get(i + 1).is_some_and(|next| is_punct(next, &['!']));
                    if !after_dot_or_path && !before_bang {
                        self.use_ident(ident);
                    }
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => {}
            }
        }
    }
}

fn is_punct(token: &TokenTree, chars: &[char]) -> bool {
    matches!(token, TokenTree::Punct(punct) if chars.contains(&punct.as_char()))
}

impl<'ast> Visit<'ast> for Names {
    fn visit_pat_ident(&mut self, pattern: &'ast syn::PatIdent) {
        self.bound.push(pattern.ident.to_string());
        syn::visit::visit_pat_ident(self, pattern);
    }

    fn visit_receiver(&mut self, _: &'ast syn::Receiver) {
        self.bound.push("self".to_owned());
    }

    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if let (None, Some(name)) = (&path.qself, path.path.get_ident()) {
            self.use_ident(name);
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_macro_body(mac);
    }
}

/// The names a format string uses: `{name}`, `{name:?}`, `{:width$}`, `{:.precision$}`.
fn format_arguments(format: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let Some(close) = rest.find('}') else { break };
        let (argument, spec) = rest[..close]
            .split_once(':')
            .unwrap_or((&rest[..close], ""));
        names.extend(identifier(argument.trim()));
        // `name$` before the last `$`: what follows the last one is the type, as `?` or `e`.
        let parts: Vec<&str> = spec.split('$').collect();
        for part in &parts[..parts.len() - 1] {
            let start = part
                .rfind(|c: char| !is_identifier_char(c))
                .map_or(0, |i| i + 1);
            names.extend(identifier(&part[start..]));
        }
        rest = &rest[close + 1..];
    }
    names
}

fn identifier(text: &str) -> Option<String> {
    let first = text.chars().next()?;
    (first.is_alphabetic() || first == '_')
        .then_some(text)
        .filter(|text| text.chars().all(is_identifier_char) && *text != "_")
        .map(str::to_owned)
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::format_arguments;

    #[test]
    fn format_strings() {
        assert_eq!(format_arguments("{path} {0} {} {{path}}"), ["path"]);
        assert_eq!(
            format_arguments("{path:?} {:>width$.prec$}"),
            ["path", "width", "prec"]
        );
        assert_eq!(
            format_arguments("{x:1$} {y:.*} {:0>5} {:w$e}"),
            ["x", "y", "w"]
        );
        assert!(format_arguments("no arguments, {{ braces }}").is_empty());
    }
}
