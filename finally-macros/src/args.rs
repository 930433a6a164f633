//! Parsing `#[with_cleanup(cleanup, option, ...)]`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprClosure, ExprPath, LitStr, Path, Token};

/// The parsed arguments of the attribute.
pub(crate) struct Args {
    pub cleanup: CleanupArg,
    /// `crate = "path"`: where the `finally` crate is, when it was renamed.
    pub krate: Option<Path>,
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
        let cleanup = input.parse()?;
        let mut krate = None;
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            if input.peek(Token![crate]) {
                let keyword: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path: LitStr = input.parse()?;
                if krate.is_some() {
                    return Err(syn::Error::new_spanned(
                        keyword,
                        "option `crate` is given twice",
                    ));
                }
                krate = Some(path.parse().map_err(|_| {
                    syn::Error::new_spanned(
                        &path,
                        "`crate` expects a path, as in `crate = \"::finally\"`",
                    )
                })?);
            } else {
                let option: Expr = input.parse()?;
                let name = match &option {
                    Expr::Path(path) => quote::quote!(#path).to_string(),
                    Expr::Assign(assign) => {
                        let left = &assign.left;
                        quote::quote!(#left).to_string()
                    }
                    _ => "this".to_owned(),
                };
                return Err(syn::Error::new_spanned(
                    option,
                    format!(
                        "unknown option `{name}` of `#[with_cleanup]`: expected `crate = \"path\"`"
                    ),
                ));
            }
        }
        Ok(Args { cleanup, krate })
    }
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
        if input.peek(Token![crate]) {
            return Err(input.error(
                "the cleanup function comes first: `#[with_cleanup(cleanup, crate = \"...\")]`",
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
