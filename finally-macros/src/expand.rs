//! Rewriting the function: its body runs inside the runtime's `run`, the cleanup after it.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::args::{Args, CleanupArg};

pub(crate) fn expand(args: Args, item: TokenStream) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "`#[with_cleanup]` can only be used on a function with a body",
        )
    })?;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "`#[with_cleanup]` cannot be used on a `const fn`: its cleanup runs at run time",
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            asyncness,
            "`#[with_cleanup]` does not support `async fn` yet",
        ));
    }
    let krate = args
        .krate
        .map_or_else(|| quote!(::finally), |path| quote!(#path));
    let cleanup = match &args.cleanup {
        // Spanned at the user's path, so a wrong signature is reported there.
        CleanupArg::Path(path) => {
            quote_spanned!(path.span()=> #krate::__private::cleanup(#path))
        }
        // A closure becomes a function pointer: one that captures is refused by the compiler,
        // pointing at what it captures.
        CleanupArg::Closure(closure) => {
            let pointer = if closure.inputs.is_empty() {
                quote!(fn())
            } else {
                quote!(fn(&#krate::Exit))
            };
            quote_spanned! {closure.span()=> {
                let __finally_cleanup: #pointer = #closure;
                __finally_cleanup
            }}
        }
    };
    // The body becomes a closure, so `return` and `?` stay inside it; its return type is
    // inferred from the signature's.
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #krate::__private::run(#cleanup, move || #block)
        }
    })
}
