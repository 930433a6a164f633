//! `#[guardian_cleanup]`: registers a function as a cleanup the guardian may run. The function
//! stays as it is; beside it, a static the runtime collects before `main`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Path, ReturnType, Type};

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
    let state = check(&function)?;
    let name = &function.sig.ident;
    let span = name.span();
    let krate = crate::expand::crate_path(options.krate.as_ref(), span);
    // The state's type, checked by its trait, at the function's name and in the registration's
    // body, where `Registered::new`'s bound checks it too: the compiler then says the error
    // once, as the trait's, and not as a bound of a function of the runtime.
    let state = crate::expand::respan(quote::quote!(#state), span);
    // So is what it returns, unless `!`, which stable Rust cannot write there.
    let outcome = match &function.sig.output {
        ReturnType::Type(_, output) if !matches!(**output, Type::Never(_)) => {
            let output = crate::expand::respan(quote::quote!(#output), span);
            quote_spanned!(span=> let () = <#output as #krate::Outcome>::CHECKED;)
        }
        _ => TokenStream::new(),
    };
    Ok(quote_spanned! {span=>
        // The state by reference is the guardian's shape, not the user's choice: clippy's
        // pedantic advice to take a small `Copy` state by value cannot be followed.
        #[allow(clippy::trivially_copy_pass_by_ref)]
        #function
        #krate::__private::inventory::submit! {{
            let () = <#state as #krate::StateRef>::CHECKED;
            #outcome
            #krate::__private::Registered::new(
                #name,
                #name,
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            )
        }}
    })
}

/// A function the guardian can call with a state it decoded: not generic, not `async`, taking
/// the state and the `Exit` by reference.
fn check(function: &ItemFn) -> syn::Result<&Type> {
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
    let by_reference =
        format!("a guardian cleanup takes the state and the `Exit` by reference: {SHAPE}");
    let [state, exit] = inputs[..] else {
        return refuse(
            sig.paren_token.span.join(),
            &format!("a guardian cleanup takes the guard's state and the `Exit`: {SHAPE}"),
        );
    };
    // What each argument refers to: the state's type first.
    let mut referents = Vec::new();
    for argument in [state, exit] {
        match argument {
            FnArg::Typed(typed) => match &*typed.ty {
                Type::Reference(reference) => referents.push(&*reference.elem),
                _ => return refuse(argument.span(), &by_reference),
            },
            FnArg::Receiver(_) => return refuse(argument.span(), &by_reference),
        }
    }
    Ok(referents[0])
}
