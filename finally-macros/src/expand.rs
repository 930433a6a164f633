//! Rewriting the function: its body runs inside the runtime's `guard_call` (or, for an
//! `async fn`, inside the future of `guard_future`), the cleanup after it.

use std::time::Duration;

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Item, ItemFn, ReturnType, Signature, Type};

use crate::args::{Args, CleanupArg};
use crate::captures;

/// The steps, each below: parse and check the item, then make the pieces of the new body.
pub(crate) fn expand(args: Args, item: TokenStream) -> syn::Result<TokenStream> {
    let ItemFn {
        attrs,
        vis,
        modifiers: _,
        sig,
        block,
    } = parse_function(item)?;
    check_placement(&args, &sig)?;
    if let CleanupArg::Closure(closure) = &args.cleanup {
        captures::check(closure, &sig)?;
    }
    // The calls are spanned at the user's cleanup, so a wrong signature is reported there.
    let span = args.cleanup.span();
    let krate = crate_path(args.krate.as_ref(), span);
    let cleanup = cleanup(&args, &krate, span);
    let site = site(&args, &sig, &krate, span);
    let configure = configure(&args, &krate, span);
    let body = if sig.asyncness.is_some() {
        async_body(&sig, &block, &cleanup, args.grace.is_some(), &krate, span)
    } else {
        sync_body(&sig, &block, &cleanup, args.grace.is_some(), &krate, span)
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

/// The item, which must be a function with a body, and not a `const fn`.
fn parse_function(item: TokenStream) -> syn::Result<ItemFn> {
    let function: ItemFn =
        syn::parse2(item.clone()).map_err(|error| not_a_function(item, error.span()))?;
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "`#[with_cleanup]` cannot be used on a `const fn`: its cleanup runs at run time",
        ));
    }
    Ok(function)
}

/// Why the item is not one the attribute takes, said for what it is.
fn not_a_function(item: TokenStream, span: Span) -> syn::Error {
    const IMPL: &str = "`#[with_cleanup]` goes on a function, not on an `impl` block: put it on each method whose end needs the cleanup";
    const TRAIT: &str = "`#[with_cleanup]` goes on a function with a body, not on a trait: put it on the methods of an `impl`";
    const MODULE: &str = "`#[with_cleanup]` goes on a function, not on a module: put it on each function whose end needs the cleanup";
    const TYPE: &str = "`#[with_cleanup]` goes on a function, not on a type: its cleanup runs when a function ends; for one that runs when a value is dropped, keep a guard in it, made with `finally::guard(move |exit| ...)`";
    const OTHER: &str = "`#[with_cleanup]` can only be used on a function with a body";
    let (span, message) = match syn::parse2(item) {
        Ok(Item::Impl(item)) => (item.impl_token.span, IMPL),
        Ok(Item::Trait(item)) => (item.trait_token.span, TRAIT),
        Ok(Item::Mod(item)) => (item.mod_token.span, MODULE),
        Ok(Item::Struct(item)) => (item.struct_token.span, TYPE),
        Ok(Item::Enum(item)) => (item.enum_token.span, TYPE),
        _ => (span, OTHER),
    };
    syn::Error::new(span, message)
}

/// The options that concern the whole process go on `main`, which starts before anything else
/// runs; on a plain `main`, so that they act before an async runtime's threads start.
fn check_placement(args: &Args, sig: &Signature) -> syn::Result<()> {
    let Some((option, span)) = args.main_only.first() else {
        return Ok(());
    };
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
    Ok(())
}

/// Where the `finally` crate is: `crate = "path"`, or `::finally`.
pub(crate) fn crate_path(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    match krate {
        Some(path) => respan(quote!(#path), span),
        None => quote_spanned!(span=> ::finally),
    }
}

/// The cleanup, as a `fn(&Exit)` value, wrapped by the guardian if `main` has one.
fn cleanup(args: &Args, krate: &TokenStream, span: Span) -> TokenStream {
    let cleanup = match &args.cleanup {
        CleanupArg::Path(path) => check(path, krate, span),
        // A closure becomes a function pointer: one that captures is refused by the compiler,
        // pointing at what it captures.
        CleanupArg::Closure(closure) => {
            let pointer = if closure.inputs.is_empty() {
                quote_spanned!(span=> fn() -> _)
            } else {
                quote_spanned!(span=> fn(&#krate::Exit) -> _)
            };
            let name = Ident::new("__finally_cleanup", Span::mixed_site());
            check(
                &quote_spanned! {span=> {
                    let #name: #pointer = #closure;
                    #name
                }},
                krate,
                span,
            )
        }
    };
    // The guardian starts first thing, while `main` still has one thread.
    match &args.guardian {
        Some(_) => quote_spanned!(span=> #krate::__private::guardian(#cleanup)),
        None => cleanup,
    }
}

/// `cleanup`, checked and ready to run: calls of the traits' methods, not of a function of the
/// runtime, so that an error names `Cleanup` or `Outcome` (what the cleanup returns) and nothing
/// of `__private` nor the runtime's sources.
fn check(cleanup: &impl quote::ToTokens, krate: &TokenStream, span: Span) -> TokenStream {
    quote_spanned! {span=>
        <_ as #krate::__private::Outcome>::returned_by(
            <_ as #krate::__private::Cleanup<_>>::ready(#cleanup)
        )
    }
}

/// What the runtime knows of this function, made once: a `static`.
fn site(args: &Args, sig: &Signature, krate: &TokenStream, span: Span) -> TokenStream {
    let name = format!("{} of {}", args.cleanup.describe(), sig.ident);
    let grace = duration(args.grace, krate, span);
    quote_spanned! {span=>
        static __FINALLY_SITE: #krate::__private::Site =
            #krate::__private::Site::new(#name, #grace);
    }
}

/// The process-wide options, set before the first guarded call installs anything.
fn configure(args: &Args, krate: &TokenStream, span: Span) -> TokenStream {
    if args.signals.is_none() && args.timeout.is_none() && args.force_quit_after.is_none() {
        return quote!();
    }
    let signals = args.signals.as_ref().map(
        |signals| quote_spanned!(span=> .signals(&[#(#krate::__private::Signal::#signals),*])),
    );
    let timeout = args.timeout.map(|_| {
        let timeout = duration(args.timeout, krate, span);
        quote_spanned!(span=> .timeout(#timeout))
    });
    let force_quit_after = args
        .force_quit_after
        .map(|count| quote_spanned!(span=> .force_quit_after(#count)));
    quote_spanned! {span=>
        #krate::__private::configure(
            #krate::__private::Options::new() #signals #timeout #force_quit_after
        );
    }
}

/// A `Duration` value, zero for none.
fn duration(duration: Option<Duration>, krate: &TokenStream, span: Span) -> TokenStream {
    match duration {
        Some(duration) => {
            let (seconds, nanos) = (duration.as_secs(), duration.subsec_nanos());
            quote_spanned!(span=> #krate::__private::Duration::new(#seconds, #nanos))
        }
        None => quote_spanned!(span=> #krate::__private::Duration::ZERO),
    }
}

/// The body of a function: a closure, so that `return` and `?` stay inside it; its return type
/// is inferred from the signature's. `main` has a call of its own, where a thread that a
/// shutdown stops waits for the end of the process. `grace`: whether the function has a grace
/// period, in the call's type.
fn sync_body(
    sig: &Signature,
    block: &syn::Block,
    cleanup: &TokenStream,
    grace: bool,
    krate: &TokenStream,
    span: Span,
) -> TokenStream {
    let call = if is_main(sig) {
        quote_spanned!(span=> #krate::__private::guard_main)
    } else {
        quote_spanned!(span=> #krate::__private::guard_call)
    };
    // Spanned at the cleanup, as its check is: a cleanup that returns no `Outcome` is then one
    // error, which the compiler does not repeat for this call.
    quote_spanned!(span=> #call::<_, _, #grace>(#cleanup, &__FINALLY_SITE, move || #block))
}

/// Whether `sig` is that of a program's `main`: named so, with no arguments and no generics.
fn is_main(sig: &Signature) -> bool {
    sig.ident == "main" && sig.inputs.is_empty() && sig.generics.params.is_empty()
}

/// The body of an `async fn`: an `async move` block inside the guarded future, so that
/// `return` and `?` stay inside it. Its output type is pinned to the declared one, as `?`
/// cannot infer it; a mistake there is reported at the declared type. `grace`: whether the
/// function has a grace period, in the future's type; so is whether it is `async fn main`'s.
fn async_body(
    sig: &Signature,
    block: &syn::Block,
    cleanup: &TokenStream,
    grace: bool,
    krate: &TokenStream,
    span: Span,
) -> TokenStream {
    let pin_output = match &sig.output {
        ReturnType::Type(_, output) if !contains_impl_trait(output) => {
            let value = Ident::new("__finally_output", Span::mixed_site());
            quote_spanned! {output.span()=>
                #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop)]
                if false {
                    let #value: #output = loop {};
                    return #value;
                }
            }
        }
        _ => quote!(),
    };
    let guard_future = quote_spanned!(span=> #krate::__private::guard_future);
    let main = is_main(sig);
    let body = Ident::new("__finally_body", Span::mixed_site());
    // The body's statements, not its block: a block as the last expression of the `async` one
    // is what `unused_braces` warns of, at the user's braces.
    let statements = &block.stmts;
    // Spanned at the cleanup, as in `sync_body`.
    let call = quote_spanned! {span=>
        #guard_future::<_, _, #grace, #main>(#cleanup, &__FINALLY_SITE, #body)
    };
    quote! {
        // A body that returns a future is the user's choice, made in the signature.
        #[allow(clippy::async_yields_async)]
        let #body = async move {
            #pin_output
            #(#statements)*
        };
        #call.await
    }
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
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
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
