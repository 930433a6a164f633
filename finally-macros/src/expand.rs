//! Rewriting the function: its body runs inside the runtime's `run`, the cleanup after it.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
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
    // The calls are spanned at the user's cleanup, so a wrong signature is reported there.
    let span = args.cleanup.span();
    let krate = match &args.krate {
        Some(path) => respan(quote!(#path), span),
        None => quote_spanned!(span=> ::finally),
    };
    let cleanup = match &args.cleanup {
        CleanupArg::Path(path) => {
            quote_spanned!(span=> #krate::__private::cleanup(#path))
        }
        // A closure becomes a function pointer: one that captures is refused by the compiler,
        // pointing at what it captures.
        CleanupArg::Closure(closure) => {
            let pointer = if closure.inputs.is_empty() {
                quote_spanned!(span=> fn())
            } else {
                quote_spanned!(span=> fn(&#krate::Exit))
            };
            quote_spanned! {span=> #krate::__private::cleanup({
                let __finally_cleanup: #pointer = #closure;
                __finally_cleanup
            })}
        }
    };
    // The body becomes a closure, so `return` and `?` stay inside it; its return type is
    // inferred from the signature's.
    let run = quote_spanned!(span=> #krate::__private::run);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #run(#cleanup, move || #block)
        }
    })
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            }
            token.set_span(span);
            token
        })
        .collect()
}
