//! Parsing `#[with_cleanup(cleanup, option, ...)]`.

use std::time::Duration;

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprClosure, ExprPath, LitStr, Path, Token};

pub(crate) mod kw {
    syn::custom_keyword!(grace);
    syn::custom_keyword!(guardian);
}

/// The parsed arguments of the attribute.
pub(crate) struct Args {
    pub cleanup: CleanupArg,
    /// `crate = "path"`: where the `finally` crate is, when it was renamed.
    pub krate: Option<Path>,
    /// `grace = "2s"`: how long a stop waits for the function to return on its own.
    pub grace: Option<Duration>,
    /// `guardian`: a second process runs the cleanup if the program dies without it.
    pub guardian: Option<kw::guardian>,
}

/// The cleanup: a path to a function, or a closure.
pub(crate) enum CleanupArg {
    Path(ExprPath),
    Closure(ExprClosure),
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "`#[with_cleanup]` needs a cleanup function: `#[with_cleanup(path::to::cleanup)]`",
            ));
        }
        let mut args = Args {
            cleanup: input.parse()?,
            krate: None,
            grace: None,
            guardian: None,
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let lookahead = input.lookahead1();
            if lookahead.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                let value = value(input, &args.krate, keyword, "crate")?;
                args.krate = Some(value.parse().map_err(|_| {
                    syn::Error::new_spanned(
                        &value,
                        "`crate` expects a path, as in `crate = \"::finally\"`",
                    )
                })?);
            } else if lookahead.peek(kw::grace) {
                let keyword: kw::grace = input.parse()?;
                let value = value(input, &args.grace, keyword, "grace")?;
                args.grace = Some(parse_duration(&value.value()).map_err(|problem| {
                    syn::Error::new_spanned(
                        &value,
                        format!("invalid `grace`: {problem}; expected a duration such as \"500ms\", \"2s\" or \"1m\""),
                    )
                })?);
            } else if lookahead.peek(kw::guardian) {
                let keyword: kw::guardian = input.parse()?;
                if args.guardian.is_some() {
                    return Err(syn::Error::new(
                        keyword.span,
                        "option `guardian` is given twice",
                    ));
                }
                args.guardian = Some(keyword);
            } else if input.peek(syn::Ident) {
                let option: Expr = input.parse()?;
                let name = match &option {
                    Expr::Assign(assign) => &assign.left,
                    other => other,
                };
                return Err(syn::Error::new_spanned(
                    &option,
                    format!(
                        "unknown option `{}` of `#[with_cleanup]`: expected `guardian`, `grace = \"...\"` or `crate = \"...\"`",
                        quote::quote!(#name)
                    ),
                ));
            } else {
                return Err(lookahead.error());
            }
        }
        Ok(args)
    }
}

/// The `= "value"` of an option, refused if the option was given already.
fn value<T>(
    input: ParseStream,
    already: &Option<T>,
    keyword: impl Spanned,
    name: &str,
) -> syn::Result<LitStr> {
    if already.is_some() {
        return Err(syn::Error::new(
            keyword.span(),
            format!("option `{name}` is given twice"),
        ));
    }
    input.parse::<Token![=]>()?;
    input.parse().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{name}` expects a string, as in `{name} = \"...\"`"),
        )
    })
}

/// Parses `"500ms"`, `"2s"`, `"1.5s"`, `"1m"`, `"1h"`: a positive number and a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("`{text}` has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` (use ms, s, m or h)")),
    };
    let duration =
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long"))?;
    if duration.is_zero() {
        return Err("a grace period must be longer than zero".to_owned());
    }
    Ok(duration)
}

impl CleanupArg {
    pub fn span(&self) -> Span {
        match self {
            CleanupArg::Path(path) => path.span(),
            CleanupArg::Closure(closure) => closure.span(),
        }
    }
}

impl Parse for CleanupArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![crate]) || input.peek(kw::grace) || input.peek(kw::guardian) {
            return Err(input.error(
                "the cleanup function comes first: `#[with_cleanup(cleanup, option = \"...\")]`",
            ));
        }
        match input.parse()? {
            Expr::Path(path) => Ok(CleanupArg::Path(path)),
            Expr::Closure(closure) if closure.inputs.len() <= 1 => Ok(CleanupArg::Closure(closure)),
            Expr::Closure(closure) => Err(syn::Error::new_spanned(
                closure.inputs,
                "a cleanup closure takes no argument or one `&finally::Exit`",
            )),
            other => Err(syn::Error::new_spanned(
                other,
                "expected a cleanup: the path of a function, or a closure that captures nothing",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "2", "s", "2x", "0s", "-1s", "1.2.3s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
