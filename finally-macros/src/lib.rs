//! The `#[with_cleanup]` and `#[guardian_cleanup]` attributes of the
//! [`finally-cleanup`](https://docs.rs/finally-cleanup) crate.
//!
//! Use them through `finally-cleanup` (whose library is `finally`), which documents them: the
//! expansions call `::finally::__private`.

use proc_macro::TokenStream;

mod args;
mod captures;
mod expand;
mod register;

// Documented where users see it: on the re-export in `finally`.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn with_cleanup(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = syn::parse(args).and_then(|args| expand::expand(args, item.clone().into()));
    or_error(expanded, item)
}

// Documented where users see it: on the re-export in `finally`.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn guardian_cleanup(options: TokenStream, item: TokenStream) -> TokenStream {
    let expanded =
        syn::parse(options).and_then(|options| register::expand(options, item.clone().into()));
    or_error(expanded, item)
}

/// The expansion; or its error, with the item unchanged beside it, so that one mistake makes
/// one error.
fn or_error(expanded: syn::Result<proc_macro2::TokenStream>, item: TokenStream) -> TokenStream {
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(proc_macro2::TokenStream::from(item));
            tokens.into()
        }
    }
}
