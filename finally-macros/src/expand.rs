//! Rewriting the function: its body runs inside the runtime's `run`, the cleanup after it.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use std::time::Duration;

use syn::visit::Visit;
use syn::{ItemFn, ReturnType, Type};

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
    // The process-wide options: on `main`, which starts before anything else runs.
    if let Some((option, span)) = args.main_only.first() {
        if sig.ident != "main" {
            return Err(syn::Error::new(
                *span,
                format!("`{option}` concerns the whole process: it can only be used on `fn main`"),
            ));
        }
        if sig.asyncness.is_some() {
            return Err(syn::Error::new(
                *span,
                format!("`{option}` must take effect before the async runtime's threads start: put `#[with_cleanup]` below `#[tokio::main]` (or the like), on the `main` it makes"),
            ));
        }
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
    // The guardian starts first thing, while `main` still has one thread.
    let cleanup = match &args.guardian {
        Some(_) => quote_spanned!(span=> #krate::__private::guardian(#cleanup)),
        None => cleanup,
    };
    let duration = |duration: Option<Duration>| match duration {
        Some(duration) => {
            let (seconds, nanos) = (duration.as_secs(), duration.subsec_nanos());
            quote_spanned!(span=> #krate::__private::Duration::new(#seconds, #nanos))
        }
        None => quote_spanned!(span=> #krate::__private::Duration::ZERO),
    };
    // What the runtime knows of this function, made once.
    let name = format!("{} of {}", args.cleanup.describe(), sig.ident);
    let grace = duration(args.grace);
    let site = quote_spanned! {span=>
        static __FINALLY_SITE: #krate::__private::Site = #krate::__private::Site {
            name: #name,
            grace: #grace,
        };
    };
    // The process-wide options, set before the first guarded call installs anything.
    let configure =
        if args.signals.is_some() || args.timeout.is_some() || args.force_quit_after.is_some() {
            let signals = match &args.signals {
                Some(signals) => quote_spanned!(span=> &[#(#krate::__private::#signals),*]),
                None => quote_spanned!(span=> #krate::__private::Config::DEFAULT.signals),
            };
            let timeout = match args.timeout {
                Some(_) => {
                    let timeout = duration(args.timeout);
                    quote_spanned!(span=> ::core::option::Option::Some(#timeout))
                }
                None => quote_spanned!(span=> ::core::option::Option::None),
            };
            let force_quit_after = match args.force_quit_after {
                Some(count) => quote_spanned!(span=> ::core::option::Option::Some(#count)),
                None => quote_spanned!(span=> ::core::option::Option::None),
            };
            quote_spanned! {span=>
                #krate::__private::configure(#krate::__private::Config {
                    signals: #signals,
                    timeout: #timeout,
                    force_quit_after: #force_quit_after,
                });
            }
        } else {
            quote!()
        };
    let body = if sig.asyncness.is_some() {
        // The body becomes an `async move` block inside the guarded future, so `return` and `?`
        // stay inside it. Its output type is pinned to the declared one, as `?` cannot infer it.
        let pin_output = match &sig.output {
            ReturnType::Type(_, output) if !contains_impl_trait(output) => quote! {
                #[allow(unreachable_code, clippy::diverging_sub_expression)]
                if false {
                    let __finally_output: #output = loop {};
                    return __finally_output;
                }
            },
            _ => quote!(),
        };
        let guard = quote_spanned!(span=> #krate::__private::guard_future);
        quote! {
            // A body that returns a future is the user's choice, made in the signature.
            #[allow(clippy::async_yields_async)]
            let __finally_body = async move {
                #pin_output
                #block
            };
            #guard(#cleanup, &__FINALLY_SITE, __finally_body).await
        }
    } else {
        // The body becomes a closure, so `return` and `?` stay inside it; its return type is
        // inferred from the signature's.
        let run = quote_spanned!(span=> #krate::__private::guard_call);
        quote!(#run(#cleanup, &__FINALLY_SITE, move || #block))
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #site
            #configure
            #body
        }
    })
}

/// Whether `ty` mentions `impl Trait`, which cannot be written as a local's type.
fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
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
