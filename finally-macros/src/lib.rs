//! The `#[with_cleanup]` attribute of the [`finally-cleanup`](https://docs.rs/finally-cleanup) crate.
//!
//! Use it through `finally-cleanup` (whose library is `finally`), which documents it: the
//! expansion calls `::finally::__private`.

use proc_macro::TokenStream;

mod args;
mod expand;

// Documented where users see it: on the re-export in `finally`.
#[allow(missing_docs)]
#[proc_macro_attribute]
pub fn with_cleanup(args: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    let expanded = syn::parse(args).and_then(|args| expand::expand(args, item.into()));
    match expanded {
        Ok(tokens) => tokens.into(),
        // The item goes out unchanged beside the error, so one mistake makes one error.
        Err(error) => {
            let mut tokens = error.to_compile_error();
            tokens.extend(original);
            tokens.into()
        }
    }
}
