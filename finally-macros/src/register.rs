//! `#[guardian_cleanup]`: registers a function as a cleanup the guardian may run. The function
//! stays as it is; beside it, a static the runtime collects before `main`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Path, Type};

use crate::args::crate_option;

/// The attribute's one option: `crate = "path"`.
pub(crate) struct Options {
    krate: Option<Path>,
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Options { krate: None });
        }
        let name = input.call(Ident::parse_any)?;
        if name != "crate" {
            return Err(syn::Error::new(
                name.span(),
                format!(
                    "unknown option `{name}`; `#[guardian_cleanup]` takes only `crate = \"...\"`"
                ),
            ));
        }
        let krate = crate_option(input)?;
        if !input.is_empty() {
            return Err(input.error("`#[guardian_cleanup]` takes only `crate = \"...\"`"));
        }
        Ok(Options { krate: Some(krate) })
    }
}

const SHAPE: &str = "`fn name(state: &Path, exit: &finally::Exit)`";

pub(crate) fn expand(options: Options, item: TokenStream) -> syn::Result<TokenStream> {
    let function: ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "`#[guardian_cleanup]` can only be used on a function with a body",
        )
    })?;
    check(&function)?;
    let name = &function.sig.ident;
    let span = name.span();
    let krate = crate::expand::crate_path(options.krate.as_ref(), span);
    Ok(quote_spanned! {span=>
        #function
        #krate::__private::inventory::submit! {
            #krate::__private::Registered::new(
                #name,
                #name,
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            )
        }
    })
}

/// A function the guardian can call with a state it decoded: not generic, not `async`, taking
/// the state and the `Exit` by reference.
fn check(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let refuse = |span: Span, why: &str| Err(syn::Error::new(span, why));
    if let Some(parameter) = sig.generics.type_params().next() {
        return refuse(
            parameter.span(),
            "a guardian cleanup cannot be generic: the guardian finds it by its one type",
        );
    }
    if let Some(parameter) = sig.generics.const_params().next() {
        return refuse(
            parameter.span(),
            "a guardian cleanup cannot be generic: the guardian finds it by its one type",
        );
    }
    if let Some(asyncness) = &sig.asyncness {
        return refuse(
            asyncness.span(),
            "a guardian cleanup cannot be `async`: the guardian calls it and it runs to its end",
        );
    }
    let inputs: Vec<_> = sig.inputs.iter().collect();
    let [state, exit] = inputs[..] else {
        return refuse(
            sig.paren_token.span.join(),
            &format!("a guardian cleanup takes the guard's state and the `Exit`: {SHAPE}"),
        );
    };
    for argument in [state, exit] {
        let by_reference =
            matches!(argument, FnArg::Typed(typed) if matches!(*typed.ty, Type::Reference(_)));
        if !by_reference {
            return refuse(
                argument.span(),
                &format!("a guardian cleanup takes the state and the `Exit` by reference: {SHAPE}"),
            );
        }
    }
    Ok(())
}
