//! The few Hyperscan (vectorscan) entry points the engine uses, declared by hand.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_ulonglong, c_void};

#[repr(C)]
pub struct hs_database_t {
    _p: [u8; 0],
}
#[repr(C)]
pub struct hs_scratch_t {
    _p: [u8; 0],
}
#[repr(C)]
pub struct hs_compile_error_t {
    pub message: *mut c_char,
    pub expression: c_int,
}

pub type hs_error_t = c_int;
pub const HS_SUCCESS: hs_error_t = 0;
pub const HS_SCAN_TERMINATED: hs_error_t = -3;

pub const HS_MODE_BLOCK: c_uint = 1;

pub type match_event_handler = Option<
    unsafe extern "C" fn(id: c_uint, from: c_ulonglong, to: c_ulonglong, flags: c_uint, ctx: *mut c_void) -> c_int,
>;

extern "C" {
    pub fn hs_compile_multi(
        expressions: *const *const c_char,
        flags: *const c_uint,
        ids: *const c_uint,
        elements: c_uint,
        mode: c_uint,
        platform: *const c_void,
        db: *mut *mut hs_database_t,
        error: *mut *mut hs_compile_error_t,
    ) -> hs_error_t;
    pub fn hs_free_compile_error(error: *mut hs_compile_error_t) -> hs_error_t;
    pub fn hs_free_database(db: *mut hs_database_t) -> hs_error_t;
    pub fn hs_alloc_scratch(db: *const hs_database_t, scratch: *mut *mut hs_scratch_t) -> hs_error_t;
    pub fn hs_clone_scratch(src: *const hs_scratch_t, dest: *mut *mut hs_scratch_t) -> hs_error_t;
    pub fn hs_free_scratch(scratch: *mut hs_scratch_t) -> hs_error_t;
    pub fn hs_scan(
        db: *const hs_database_t,
        data: *const c_char,
        length: c_uint,
        flags: c_uint,
        scratch: *mut hs_scratch_t,
        on_event: match_event_handler,
        context: *mut c_void,
    ) -> hs_error_t;
}
