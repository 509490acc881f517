//! Code generation: wraps the function body so the call is timed, its result
//! read through `UsageSource`, and a panic or a dropped future still recorded.
//!
//! Shapes handled, like `tracing-attributes`:
//! - sync `fn`: the body runs in a closure (so `return` and `?` stay local to it);
//! - `async fn`: the body runs in an inner `async move` block;
//! - a sync `fn` whose tail is `async move { … }` or `Box::pin(async move { … })`
//!   (what `#[async_trait]` generates): that block is wrapped instead.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    parse_quote, Block, Expr, ExprAsync, FnArg, GenericArgument, Ident, Item, ItemFn, LitStr, Pat,
    PathArguments, ReturnType, Signature, Stmt, TraitItemFn, Type, TypeParamBound,
};

use crate::attr::Args;

/// Entry point: never panics, turns every problem into a `compile_error!`
/// next to the untouched item (so one mistake does not cascade).
pub(crate) fn track(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse2::<Args>(args) {
        Ok(a) => a,
        Err(e) => return fallback(e, item),
    };
    let func = match parse_fn(item.clone()) {
        Ok(f) => f,
        Err(e) => return fallback(e, item),
    };
    match expand_fn(args, func) {
        Ok(ts) => ts,
        Err(e) => fallback(e, item),
    }
}

/// The error plus the item, minus our `#[usage_context]` markers (which would
/// otherwise add a second, confusing "cannot find attribute" error).
fn fallback(err: syn::Error, item: TokenStream) -> TokenStream {
    let err = err.to_compile_error();
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(mut f) => {
            for arg in f.sig.inputs.iter_mut() {
                arg_attrs(arg).retain(|a| !a.path().is_ident("usage_context"));
            }
            quote!(#err #f)
        }
        // Not even an item: the attribute sits on an expression (a closure),
        // where anything after the error would only add confusing errors.
        Err(_) if syn::parse2::<Item>(item.clone()).is_err() => err,
        Err(_) => quote!(#err #item),
    }
}

fn parse_fn(item: TokenStream) -> syn::Result<ItemFn> {
    if let Ok(f) = syn::parse2::<ItemFn>(item.clone()) {
        return Ok(f);
    }
    if let Ok(t) = syn::parse2::<TraitItemFn>(item.clone()) {
        if t.default.is_none() {
            return Err(syn::Error::new_spanned(
                &t.sig,
                "#[track_ai_usage] needs a function body to wrap, and this declaration has \
                 none: on a trait, put it on the method in each `impl`, not on the trait's \
                 declaration",
            ));
        }
    }
    let (what, blame, hint) = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(i)) => ("a struct", spanned(&i.struct_token, &i.ident), ""),
        Ok(Item::Enum(i)) => ("an enum", spanned(&i.enum_token, &i.ident), ""),
        Ok(Item::Union(i)) => ("a union", spanned(&i.union_token, &i.ident), ""),
        Ok(Item::Const(i)) => ("a `const` item", spanned(&i.const_token, &i.ident), ""),
        Ok(Item::Static(i)) => ("a `static` item", spanned(&i.static_token, &i.ident), ""),
        Ok(Item::Type(i)) => ("a type alias", spanned(&i.type_token, &i.ident), ""),
        Ok(Item::Mod(i)) => ("a module", spanned(&i.mod_token, &i.ident), ""),
        Ok(Item::Trait(i)) => (
            "a trait",
            spanned(&i.trait_token, &i.ident),
            "; put it on the methods of the trait's `impl` blocks",
        ),
        Ok(Item::Impl(i)) => (
            "an `impl` block",
            spanned(&i.impl_token, &i.self_ty),
            "; put it on each method inside the block that calls the AI",
        ),
        Ok(other) => ("this item", other.to_token_stream(), ""),
        Err(_) => (
            "an expression or closure",
            item,
            "; move the closure's body into an (`async`) fn and put the attribute on that",
        ),
    };
    Err(syn::Error::new_spanned(
        blame,
        format!(
            "#[track_ai_usage] can only be applied to a function, not to {what}{hint}, e.g. \
             `#[track_ai_usage(\"实时分析\", \"qwen-plus\")] fn generate_analysis(…)`"
        ),
    ))
}

/// The tokens from `first` to `last`, for an error that underlines both.
fn spanned(first: &impl ToTokens, last: &impl ToTokens) -> TokenStream {
    quote!(#first #last)
}

fn arg_attrs(arg: &mut FnArg) -> &mut Vec<syn::Attribute> {
    match arg {
        FnArg::Receiver(r) => &mut r.attrs,
        FnArg::Typed(t) => &mut t.attrs,
    }
}

/// The parameter that supplies ids through `UsageContext`.
struct ContextParam {
    /// `self` or the parameter's name.
    name: TokenStream,
    /// Declared as `&T`: its ids can be borrowed for the whole call.
    shared_ref: bool,
    /// Where to blame a missing `UsageContext` impl.
    ty_span: Span,
}

/// How one of the three ids is obtained.
enum IdSource<'a> {
    Explicit(&'a Expr),
    Param(&'a Ident),
}

fn expand_fn(args: Args, mut func: ItemFn) -> syn::Result<TokenStream> {
    if let Some(c) = &func.sig.constness {
        return Err(syn::Error::new(
            c.span,
            "#[track_ai_usage] cannot be used on a `const fn`: recording happens at run time; \
             remove `const`",
        ));
    }
    if let Some(v) = &func.sig.variadic {
        return Err(syn::Error::new_spanned(
            v,
            "#[track_ai_usage] does not support C-variadic functions (`...`); track a \
             function with a fixed parameter list that calls this one",
        ));
    }
    let context = find_context(&args, &mut func.sig)?;

    let krate: TokenStream = match &args.krate {
        Some(p) => p.to_token_stream(),
        None => quote!(::ai_usage_monitor),
    };
    let p = quote!(#krate::__private);

    let function = match &args.function {
        Some(f) => f.clone(),
        None => {
            let name = func.sig.ident.to_string();
            let name = name.strip_prefix("r#").unwrap_or(&name).to_owned();
            LitStr::new(&name, func.sig.ident.span())
        }
    };

    // Ids: explicit argument > parameter of that name > context parameter.
    let mut ids = Vec::new();
    let mut id_values = TokenStream::new();
    let mut uses_context = false;
    let mut present: Vec<&str> = Vec::new();
    for (key, explicit) in [
        ("user_id", &args.user_id),
        ("anchor_id", &args.anchor_id),
        ("session_id", &args.session_id),
    ] {
        let source = match explicit {
            Some(e) => Some(IdSource::Explicit(e)),
            None => find_param(&func.sig, key).map(IdSource::Param),
        };
        let method = Ident::new(key, Span::call_site());
        let field = Ident::new(key, Span::call_site());
        let value = match (source, &context) {
            (Some(IdSource::Explicit(e)), _) => {
                quote_spanned!(e.span()=> #p::IntoUsageId::usage_id(&(#e)))
            }
            (Some(IdSource::Param(ident)), None) => {
                quote_spanned!(ident.span()=> #p::IntoUsageId::usage_id(&#ident))
            }
            (Some(IdSource::Param(ident)), Some(_)) => {
                uses_context = true;
                quote_spanned!(ident.span()=>
                    #p::IntoUsageId::usage_id(&#ident).or(__ai_usage_context.#field))
            }
            (None, Some(_)) => {
                uses_context = true;
                quote!(__ai_usage_context.#field)
            }
            (None, None) => continue,
        };
        let local = Ident::new(&format!("__ai_usage_{key}"), Span::call_site());
        present.push(key);
        id_values.extend(quote!(let #local = #value;));
        ids.push(quote!(.#method(#local)));
    }

    // `values` are evaluated where the call starts (before any `async` block,
    // so a returned future does not borrow what they were computed from);
    // `start` creates the guard where the timed part begins.
    let mut values = TokenStream::new();
    if let (Some(cx), true) = (&context, uses_context) {
        let name = &cx.name;
        let init = if cx.shared_ref {
            // Borrow through the reference: lives as long as the referent,
            // so the body may still move or copy the parameter freely.
            quote_spanned!(cx.ty_span=> #p::ContextIds::borrowed(&*#name))
        } else {
            // Owned or `&mut` context: copy the ids out now, since the body
            // may move or mutate the parameter.
            quote_spanned!(cx.ty_span=> #p::ContextIds::owned(&#name))
        };
        values.extend(quote!(let __ai_usage_context = #init;));
    }
    values.extend(id_values);
    let (monitor, handle) = match &args.monitor {
        Some(e) => (
            quote!(#e),
            quote_spanned!(e.span()=> #p::MonitorHandle::usage_monitor(&__ai_usage_monitor)),
        ),
        None => (
            quote!(#p::global_monitor()),
            quote!(#p::MonitorHandle::usage_monitor(&__ai_usage_monitor)),
        ),
    };
    let model = args.model.as_ref().map(|m| quote!(.model(#m)));
    let provider = args.provider.as_ref().map(|p| quote!(.provider(#p)));
    values.extend(quote!(let __ai_usage_monitor = #monitor;));
    // `budget_guard`: refused before the guard exists, so a refusal is
    // recorded as neither a call nor a cost.
    let guard_check = match &args.budget_guard {
        Some(flag) => {
            check_result_return(&func.sig, flag)?;
            let id = |key: &str| {
                if present.contains(&key) {
                    let local = Ident::new(&format!("__ai_usage_{key}"), Span::call_site());
                    quote!(::core::option::Option::as_deref(&#local))
                } else {
                    quote!(::core::option::Option::None)
                }
            };
            let (user, anchor) = (id("user_id"), id("anchor_id"));
            let model = match &args.model {
                Some(m) => quote!(::core::option::Option::Some(#m)),
                None => quote!(::core::option::Option::None),
            };
            quote_spanned! {flag.span()=>
                if let ::core::result::Result::Err(__ai_usage_refused) =
                    #p::check_budget(#handle, #function, #model, #user, #anchor)
                {
                    return ::core::result::Result::Err(#p::refuse(__ai_usage_refused));
                }
            }
        }
        None => TokenStream::new(),
    };
    let span = call_span(&p, &function, &args);
    let start = quote! {
        #guard_check
        let __ai_usage_guard =
            #p::CallGuard::start(#handle, #function, #span) #model #provider #(#ids)*;
    };

    let ret_span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => func.sig.ident.span(),
    };
    let finish = match &args.extract {
        None => quote_spanned! {ret_span=>
            #p::CallGuard::finish(__ai_usage_guard, &__ai_usage_ret);
        },
        // Bound first: calling `(|r| …)(v)` in place trips `redundant_closure_call`.
        Some(ex) => quote_spanned! {ex.span()=>
            let __ai_usage_extract = #ex;
            #p::CallGuard::finish_with(
                __ai_usage_guard,
                &__ai_usage_ret,
                |__ai_usage_value, __ai_usage_out| __ai_usage_out.source(&__ai_usage_extract(__ai_usage_value)),
            );
        },
    };
    let gen = Gen {
        p: &p,
        start: &start,
        finish: &finish,
    };

    if func.sig.asyncness.is_some() {
        let out_ty = return_type(&func.sig.output);
        let inner = gen.async_body(&func.block, out_ty.as_ref(), quote!(move));
        *func.block = parse_quote!({ #values #inner });
    } else if let Some(tail) = async_tail(&mut func.block) {
        let out_ty = match &func.sig.output {
            ReturnType::Type(_, ty) => future_output(ty).cloned(),
            ReturnType::Default => None,
        };
        // The returned block must own what it uses: capture by `move`.
        let capture = tail.capture.map(|m| m.to_token_stream());
        let inner = gen.async_body(&tail.block, out_ty.as_ref(), capture.unwrap_or_default());
        tail.block = parse_quote!({ #inner });
        tail.capture = Some(syn::Token![move](Span::call_site()));
        let stmts = &func.block.stmts;
        *func.block = parse_quote!({ #values #(#stmts)* });
    } else {
        let out_ty = return_type(&func.sig.output);
        let inner = gen.sync_body(&func.block, out_ty.as_ref());
        *func.block = parse_quote!({ #values #inner });
    }
    Ok(func.into_token_stream())
}

/// The GenAI operation every tracked call is reported as: the attribute
/// has no way to name another, and records do not keep one.
const OPERATION: &str = "chat";

/// The call's `tracing` span, named `{operation} {model}` (the GenAI span
/// name; just the operation when the model is known only from the
/// response), with the GenAI attribute names. Name and fields are static per
/// call site, so with no subscriber this is one cached interest check; the
/// result's fields are declared `Empty` and filled by the guard.
fn call_span(p: &TokenStream, function: &LitStr, args: &Args) -> TokenStream {
    let name = match &args.model {
        Some(m) => format!("{OPERATION} {}", m.value()),
        None => OPERATION.to_owned(),
    };
    let name = LitStr::new(&name, Span::call_site());
    let empty = quote!(#p::tracing::field::Empty);
    let model = match &args.model {
        Some(m) => quote!(#m),
        None => empty.clone(),
    };
    let provider = match &args.provider {
        Some(pr) => quote!(#pr),
        None => empty.clone(),
    };
    quote! {
        #p::tracing::span!(
            target: "ai_usage_monitor",
            #p::tracing::Level::INFO,
            #name,
            "otel.kind" = "client",
            // The call is a record already: a receiver of these spans
            // (ours at /v1/traces) must not count it again.
            "ai_usage.recorded" = true,
            "gen_ai.operation.name" = #OPERATION,
            "gen_ai.request.model" = #model,
            "gen_ai.provider.name" = #provider,
            "ai_usage.function" = #function,
            "gen_ai.response.model" = #empty,
            "gen_ai.usage.input_tokens" = #empty,
            "gen_ai.usage.output_tokens" = #empty,
            "error.type" = #empty,
            "otel.status_code" = #empty,
        )
    }
}

/// `budget_guard` refuses with `Err(..)`: the function (or its future) must
/// return a `Result`.
fn check_result_return(sig: &Signature, flag: &Ident) -> syn::Result<()> {
    let ty = match &sig.output {
        ReturnType::Type(_, ty) if sig.asyncness.is_none() => {
            future_output(ty).unwrap_or(ty.as_ref())
        }
        ReturnType::Type(_, ty) => ty.as_ref(),
        ReturnType::Default => {
            return Err(syn::Error::new(
                flag.span(),
                "`budget_guard` refuses a call by returning `Err(BudgetExceeded.into())`: the \
                 function must return `Result<_, E>` where `E: From<BudgetExceeded>`, and this \
                 one returns `()`",
            ))
        }
    };
    let is_result =
        matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"));
    if is_result {
        return Ok(());
    }
    Err(syn::Error::new(
        flag.span(),
        format!(
            "`budget_guard` refuses a call by returning `Err(BudgetExceeded.into())`: the \
             function must return `Result<_, E>` where `E: From<BudgetExceeded>`, not `{}`",
            ty.to_token_stream()
        ),
    ))
}

/// Pieces shared by the sync and async bodies.
struct Gen<'a> {
    p: &'a TokenStream,
    start: &'a TokenStream,
    finish: &'a TokenStream,
}

impl Gen<'_> {
    fn sync_body(&self, block: &Block, out_ty: Option<&Type>) -> TokenStream {
        let Gen { p, start, finish } = self;
        let body = with_fake_return(block, out_ty);
        quote! {
            #start
            let (__ai_usage_ret, __ai_usage_guard) = #p::run_sync(__ai_usage_guard, || #body);
            #finish
            __ai_usage_ret
        }
    }

    fn async_body(
        &self,
        block: &Block,
        out_ty: Option<&Type>,
        capture: TokenStream,
    ) -> TokenStream {
        let Gen { p, start, finish } = self;
        let body = with_fake_return(block, out_ty);
        quote! {
            #start
            let __ai_usage_future = async #capture #body;
            let (__ai_usage_ret, __ai_usage_guard) =
                #p::Tracked::new(#p::pin!(__ai_usage_future), __ai_usage_guard).await;
            #finish
            __ai_usage_ret
        }
    }
}

/// `{ if false { let x: Ret = loop {}; return x; } body }`: pins the closure's
/// or async block's output type so `?` and `return` infer as in the original
/// function (the trick `tracing-attributes` uses). `impl Trait` parts become `_`.
fn with_fake_return(block: &Block, out_ty: Option<&Type>) -> TokenStream {
    let stmts = &block.stmts;
    let fake = out_ty.and_then(|ty| {
        if matches!(ty, Type::Never(_)) {
            return None;
        }
        let mut ty = ty.clone();
        EraseImplTrait.visit_type_mut(&mut ty);
        Some(quote! {
            #[allow(
                unknown_lints,
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::let_unit_value,
                clippy::unreachable,
                clippy::let_with_type_underscore,
                clippy::empty_loop,
                clippy::needless_return
            )]
            if false {
                let __ai_usage_fake_return: #ty = loop {};
                return __ai_usage_fake_return;
            }
        })
    });
    quote!({ #fake #(#stmts)* })
}

struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(it) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](it.span()),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

fn return_type(output: &ReturnType) -> Option<Type> {
    match output {
        ReturnType::Type(_, ty) => Some((**ty).clone()),
        ReturnType::Default => Some(parse_quote!(())),
    }
}

/// `T` in `impl Future<Output = T>` or `Pin<Box<dyn Future<Output = T> + …>>`.
fn future_output(ty: &Type) -> Option<&Type> {
    fn from_bounds<'a>(bounds: impl IntoIterator<Item = &'a TypeParamBound>) -> Option<&'a Type> {
        bounds.into_iter().find_map(|b| match b {
            TypeParamBound::Trait(t) => {
                let seg = t.path.segments.last()?;
                if seg.ident != "Future" {
                    return None;
                }
                match &seg.arguments {
                    PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                        GenericArgument::AssocType(at) if at.ident == "Output" => Some(&at.ty),
                        _ => None,
                    }),
                    _ => None,
                }
            }
            _ => None,
        })
    }
    match ty {
        Type::ImplTrait(it) => from_bounds(&it.bounds),
        Type::TraitObject(to) => from_bounds(&to.bounds),
        Type::Paren(p) => future_output(&p.elem),
        Type::Group(g) => future_output(&g.elem),
        Type::Path(tp) => {
            let seg = tp.path.segments.last()?;
            match &seg.arguments {
                PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                    GenericArgument::Type(t) => future_output(t),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `async` block a sync fn returns as its tail: `async move { … }` or
/// `Box::pin(async move { … })` (the `#[async_trait]` shape).
fn async_tail(block: &mut Block) -> Option<&mut ExprAsync> {
    let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() else {
        return None;
    };
    match tail {
        Expr::Async(a) => Some(a),
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => {
            match call.args.first_mut() {
                Some(Expr::Async(a)) => Some(a),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(p) = func else { return false };
    let segs: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    segs.len() >= 2 && segs[segs.len() - 2] == "Box" && segs[segs.len() - 1] == "pin"
}

fn param_ident(pat: &Pat) -> Option<&Ident> {
    match pat {
        Pat::Ident(pi) if pi.subpat.is_none() => Some(&pi.ident),
        _ => None,
    }
}

fn find_param<'a>(sig: &'a Signature, name: &str) -> Option<&'a Ident> {
    sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(t) => param_ident(&t.pat).filter(|i| *i == name),
        FnArg::Receiver(_) => None,
    })
}

fn is_shared_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_none(),
        Type::Paren(p) => is_shared_ref(&p.elem),
        Type::Group(g) => is_shared_ref(&g.elem),
        _ => false,
    }
}

fn context_of(arg: &FnArg) -> syn::Result<ContextParam> {
    match arg {
        FnArg::Receiver(r) => Ok(ContextParam {
            name: r.self_token.to_token_stream(),
            shared_ref: is_shared_ref(&r.ty),
            ty_span: r.span(),
        }),
        FnArg::Typed(t) => match param_ident(&t.pat) {
            Some(ident) => Ok(ContextParam {
                name: ident.to_token_stream(),
                shared_ref: is_shared_ref(&t.ty),
                ty_span: t.ty.span(),
            }),
            None => Err(syn::Error::new_spanned(
                &t.pat,
                "the context parameter needs a plain name, not a pattern: write \
                 `ctx: &LiveContext` and destructure `ctx` in the body",
            )),
        },
    }
}

/// Finds (and strips) `#[usage_context]`, or resolves `context = name`.
fn find_context(args: &Args, sig: &mut Signature) -> syn::Result<Option<ContextParam>> {
    let mut marked: Option<ContextParam> = None;
    for arg in sig.inputs.iter_mut() {
        let mut marker: Option<syn::Attribute> = None;
        let mut dup: Option<syn::Attribute> = None;
        arg_attrs(arg).retain(|a| {
            if !a.path().is_ident("usage_context") {
                return true;
            }
            if marker.is_some() {
                dup = Some(a.clone());
            } else {
                marker = Some(a.clone());
            }
            false
        });
        let Some(marker) = marker else { continue };
        if let Some(dup) = dup {
            return Err(syn::Error::new_spanned(
                dup,
                "`#[usage_context]` is given twice on this parameter; keep one",
            ));
        }
        if !matches!(marker.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new_spanned(
                &marker.meta,
                "`#[usage_context]` takes no arguments: write `#[usage_context] ctx: &LiveContext`",
            ));
        }
        if marked.is_some() {
            return Err(syn::Error::new_spanned(
                &marker,
                "only one parameter can be `#[usage_context]`; pass the other ids as \
                 `user_id = …`, `anchor_id = …` or `session_id = …`",
            ));
        }
        if let Some(c) = &args.context {
            return Err(syn::Error::new(
                c.span(),
                "the context is given twice (`context = …` and `#[usage_context]`); keep one",
            ));
        }
        marked = Some(context_of(arg)?);
    }
    if marked.is_some() {
        return Ok(marked);
    }
    let Some(name) = &args.context else {
        return Ok(None);
    };
    let found = sig.inputs.iter().find(|arg| match arg {
        FnArg::Receiver(_) => name == "self",
        FnArg::Typed(t) => param_ident(&t.pat).is_some_and(|i| i == name),
    });
    match found {
        Some(arg) => context_of(arg).map(Some),
        None => {
            let names: Vec<String> = sig
                .inputs
                .iter()
                .filter_map(|arg| match arg {
                    FnArg::Receiver(_) => Some("`self`".to_owned()),
                    FnArg::Typed(t) => param_ident(&t.pat).map(|i| format!("`{i}`")),
                })
                .collect();
            let known = if names.is_empty() {
                "it has no parameters".to_owned()
            } else {
                format!("its parameters are {}", names.join(", "))
            };
            Err(syn::Error::new(
                name.span(),
                format!(
                    "this function has no parameter named `{name}` ({known}); `context = …` \
                     names the parameter whose type implements `UsageContext`"
                ),
            ))
        }
    }
}
