//! Parsing `#[with_cleanup(cleanup, option, ...)]`.

use std::time::Duration;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprClosure, ExprPath, Ident, LitInt, LitStr, Path, Token};

/// The parsed arguments of the attribute.
pub(crate) struct Args {
    pub cleanup: CleanupArg,
    /// `crate = "path"`: where the `finally` crate is, when it was renamed.
    pub krate: Option<Path>,
    /// `grace = "2s"`: how long a stop waits for the function to return on its own.
    pub grace: Option<Duration>,
    /// `guardian`: a second process runs the cleanup if the program dies without it.
    pub guardian: Option<Span>,
    /// `signals = [SIGINT, ...]`: the signals that run the cleanups.
    pub signals: Option<Vec<Ident>>,
    /// `timeout = "10s"`: how long the cleanups may take after a signal.
    pub timeout: Option<Duration>,
    /// `force_quit_after = 3`: more signals that end the process at once during the cleanups.
    pub force_quit_after: Option<u32>,
    /// Where the options that only `main` takes were given.
    pub main_only: Vec<(&'static str, Span)>,
}

/// The signals a program can hand to `finally`: those whose default action ends the process
/// and that can be caught.
pub(crate) const SIGNALS: [&str; 7] = [
    "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM",
];

/// The cleanup: a path to a function, or a closure.
pub(crate) enum CleanupArg {
    Path(ExprPath),
    Closure(ExprClosure),
}

/// The options that concern the whole process, which only `main` takes.
const MAIN_ONLY: [&str; 4] = ["guardian", "signals", "timeout", "force_quit_after"];

const OPTIONS: &str =
    "`guardian`, `grace = \"...\"`, `signals = [...]`, `timeout = \"...\"`, `force_quit_after = N` or `crate = \"...\"`";

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
            signals: None,
            timeout: None,
            force_quit_after: None,
            main_only: Vec::new(),
        };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let name = input.call(Ident::parse_any)?;
            let span = name.span();
            let option = name.to_string();
            match option.as_str() {
                "guardian" => once(&mut args.guardian, span, &option, Ok(span))?,
                "crate" => once(&mut args.krate, span, &option, crate_option(input))?,
                "grace" | "timeout" => {
                    let value = string(input, &option)?;
                    let duration = parse_duration(&value.value()).map_err(|problem| {
                        let example = "such as \"500ms\", \"2s\" or \"1m\"";
                        error(
                            &value,
                            format!("invalid `{option}`: {problem}; expected a duration {example}"),
                        )
                    });
                    let slot = if option == "grace" {
                        &mut args.grace
                    } else {
                        &mut args.timeout
                    };
                    once(slot, span, &option, duration)?;
                }
                "signals" => {
                    input.parse::<Token![=]>()?;
                    let list;
                    syn::bracketed!(list in input);
                    let signals = Punctuated::<Ident, Token![,]>::parse_terminated(&list)?;
                    once(&mut args.signals, span, &option, check_signals(signals))?;
                }
                "force_quit_after" => {
                    input.parse::<Token![=]>()?;
                    let count: LitInt = input.parse()?;
                    let count = count
                        .base10_parse::<u32>()
                        .ok()
                        .filter(|&count| count > 0)
                        .ok_or_else(|| {
                            error(
                                &count,
                                "`force_quit_after` expects a count of signals, 1 or more",
                            )
                        });
                    once(&mut args.force_quit_after, span, &option, count)?;
                }
                _ => {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "unknown option `{option}` of `#[with_cleanup]`: expected {OPTIONS}"
                        ),
                    ))
                }
            }
            if let Some(name) = MAIN_ONLY.iter().find(|name| **name == option) {
                args.main_only.push((name, span));
            }
        }
        Ok(args)
    }
}

fn error(tokens: impl quote::ToTokens, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(tokens, message)
}

/// The `= "path"` of `crate`.
pub(crate) fn crate_option(input: ParseStream) -> syn::Result<Path> {
    let value = string(input, "crate")?;
    value.parse().map_err(|_| {
        error(
            &value,
            "`crate` expects a path, as in `crate = \"::finally\"`",
        )
    })
}

/// Sets an option, refusing it the second time.
fn once<T>(slot: &mut Option<T>, span: Span, name: &str, value: syn::Result<T>) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            span,
            format!("option `{name}` is given twice"),
        ));
    }
    *slot = Some(value?);
    Ok(())
}

/// The `= "value"` of an option.
fn string(input: ParseStream, name: &str) -> syn::Result<LitStr> {
    input.parse::<Token![=]>()?;
    input.parse().map_err(|error| {
        syn::Error::new(
            error.span(),
            format!("`{name}` expects a string, as in `{name} = \"...\"`"),
        )
    })
}

/// Each signal one `finally` can handle, and once.
fn check_signals(signals: Punctuated<Ident, Token![,]>) -> syn::Result<Vec<Ident>> {
    let mut checked: Vec<Ident> = Vec::new();
    for signal in signals {
        let name = signal.to_string();
        if checked.contains(&signal) {
            return Err(error(&signal, format!("`{name}` is listed twice")));
        }
        if let "SIGKILL" | "SIGSTOP" = name.as_str() {
            return Err(error(&signal, format!(
                "`{name}` cannot be caught by any program; the `guardian` option cleans up after a SIGKILL"
            )));
        }
        if !SIGNALS.contains(&name.as_str()) {
            return Err(error(
                &signal,
                format!(
                    "`{name}` is not a signal `finally` handles: expected some of {}",
                    SIGNALS.join(", ")
                ),
            ));
        }
        checked.push(signal);
    }
    Ok(checked)
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
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit `{unit}` (use ms, s, m or h)")),
    };
    let duration =
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long"))?;
    if duration.is_zero() {
        return Err(format!("`{text}` is no time at all"));
    }
    Ok(duration)
}

impl CleanupArg {
    /// The cleanup, as reports name it.
    pub fn describe(&self) -> String {
        match self {
            CleanupArg::Path(path) => quote::quote!(#path).to_string().replace(' ', ""),
            CleanupArg::Closure(_) => "the cleanup closure".to_owned(),
        }
    }

    pub fn span(&self) -> Span {
        match self {
            CleanupArg::Path(path) => path.span(),
            CleanupArg::Closure(closure) => closure.span(),
        }
    }
}

/// Why a cleanup cannot be `async`; also said, from the runtime, of a path to an `async fn`.
const ASYNC: &str = "a cleanup cannot be `async`: it runs to its end where nothing would poll it (on the signal thread, in a destructor, inside `exit`); to await something when the program is stopped, await `finally::stop_signal()` in the function's body and give it a `grace` period";

/// Where an `async` closure (`async || ...`), or one returning an `async` block, says so.
fn asyncness(closure: &ExprClosure) -> Option<Span> {
    match (&closure.asyncness, &*closure.body) {
        (Some(asyncness), _) => Some(asyncness.span),
        (None, Expr::Async(block)) => Some(block.async_token.span),
        (None, _) => None,
    }
}

impl Parse for CleanupArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![crate]) || (input.peek(Ident) && input.peek2(Token![=])) {
            return Err(input.error(
                "the cleanup function comes first: `#[with_cleanup(cleanup, option = ...)]`",
            ));
        }
        match input.parse()? {
            Expr::Path(path) => Ok(CleanupArg::Path(path)),
            Expr::Closure(closure) if asyncness(&closure).is_some() => Err(syn::Error::new(
                asyncness(&closure).unwrap_or_else(Span::call_site),
                ASYNC,
            )),
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
        for bad in ["", "2", "s", "2x", "0s", "-1s", "1.2.3s", "1e400s", "1min"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
