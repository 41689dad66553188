;; Batch normalisation over the rows of [rows, c] float32 arrays (NHWC with rows = N*H*W),
;; 4 channels at a time (wasm SIMD; c a multiple of 4). Compiled by scripts/build-wasm.mjs into
;; batch-norm.wasm.ts; a test checks the two agree. Pointers are byte offsets into the imported heap.
(module
  (import "env" "memory" (memory 1))

  ;; out[ch] = sum over rows of (b[r, ch] - m[ch]) * f, f = 1 (mode 0), a[r, ch] (mode 1) or
  ;; b[r, ch] - m[ch] (mode 2). Rows are summed in blocks of 32 into `block` [c], each block then
  ;; added to `out`: rounding grows with the block count, not the row count.
  (func (export "sums")
    (param $a i32) (param $b i32) (param $m i32) (param $rows i32) (param $c i32)
    (param $block i32) (param $out i32) (param $mode i32)
    (local $r i32) (local $r1 i32) (local $ch i32) (local $row i32) (local $bytes i32)
    (local $d v128) (local $f v128)
    (local.set $bytes (i32.shl (local.get $c) (i32.const 2)))
    ;; out = 0
    (local.set $ch (i32.const 0))
    (block $z (loop $zl
      (br_if $z (i32.ge_u (local.get $ch) (local.get $bytes)))
      (v128.store (i32.add (local.get $out) (local.get $ch)) (v128.const f32x4 0 0 0 0))
      (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
      (br $zl)))
    (block $done (loop $blocks
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $r1 (select (i32.add (local.get $r) (i32.const 32)) (local.get $rows)
        (i32.lt_u (i32.add (local.get $r) (i32.const 32)) (local.get $rows))))
      ;; block = 0
      (local.set $ch (i32.const 0))
      (block $bz (loop $bzl
        (br_if $bz (i32.ge_u (local.get $ch) (local.get $bytes)))
        (v128.store (i32.add (local.get $block) (local.get $ch)) (v128.const f32x4 0 0 0 0))
        (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
        (br $bzl)))
      (block $rdone (loop $rowsl
        (br_if $rdone (i32.ge_u (local.get $r) (local.get $r1)))
        (local.set $row (i32.mul (local.get $r) (local.get $bytes)))
        (local.set $ch (i32.const 0))
        (block $cdone (loop $chl
          (br_if $cdone (i32.ge_u (local.get $ch) (local.get $bytes)))
          (local.set $d (f32x4.sub
            (v128.load (i32.add (local.get $b) (i32.add (local.get $row) (local.get $ch))))
            (v128.load (i32.add (local.get $m) (local.get $ch)))))
          (local.set $f
            (select (result v128)
              (v128.const f32x4 1 1 1 1)
              (select (result v128)
                (v128.load (i32.add (local.get $a) (i32.add (local.get $row) (local.get $ch))))
                (local.get $d)
                (i32.eq (local.get $mode) (i32.const 1)))
              (i32.eqz (local.get $mode))))
          (v128.store (i32.add (local.get $block) (local.get $ch))
            (f32x4.add (v128.load (i32.add (local.get $block) (local.get $ch)))
              (f32x4.mul (local.get $d) (local.get $f))))
          (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
          (br $chl)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowsl)))
      ;; out += block
      (local.set $ch (i32.const 0))
      (block $ad (loop $adl
        (br_if $ad (i32.ge_u (local.get $ch) (local.get $bytes)))
        (v128.store (i32.add (local.get $out) (local.get $ch))
          (f32x4.add (v128.load (i32.add (local.get $out) (local.get $ch)))
            (v128.load (i32.add (local.get $block) (local.get $ch)))))
        (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
        (br $adl)))
      (br $blocks))))

  ;; out[r, ch] = pa[ch] a[r, ch] + pb[ch] b[r, ch] + pd[ch], then max(0, .) when relu is 1.
  (func (export "affine")
    (param $a i32) (param $b i32) (param $rows i32) (param $c i32)
    (param $pa i32) (param $pb i32) (param $pd i32) (param $out i32) (param $relu i32)
    (local $r i32) (local $ch i32) (local $at i32) (local $bytes i32) (local $v v128)
    (local.set $bytes (i32.shl (local.get $c) (i32.const 2)))
    (block $done (loop $rowsl
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $ch (i32.const 0))
      (block $cdone (loop $chl
        (br_if $cdone (i32.ge_u (local.get $ch) (local.get $bytes)))
        (local.set $at (i32.add (i32.mul (local.get $r) (local.get $bytes)) (local.get $ch)))
        (local.set $v
          (f32x4.add
            (f32x4.add
              (f32x4.mul (v128.load (i32.add (local.get $pa) (local.get $ch))) (v128.load (i32.add (local.get $a) (local.get $at))))
              (f32x4.mul (v128.load (i32.add (local.get $pb) (local.get $ch))) (v128.load (i32.add (local.get $b) (local.get $at)))))
            (v128.load (i32.add (local.get $pd) (local.get $ch)))))
        (if (local.get $relu) (then (local.set $v (f32x4.max (local.get $v) (v128.const f32x4 0 0 0 0)))))
        (v128.store (i32.add (local.get $out) (local.get $at)) (local.get $v))
        (local.set $ch (i32.add (local.get $ch) (i32.const 16)))
        (br $chl)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rowsl))))

  ;; out[i] = dy[i] where y[i] > 0, else 0: ReLU's gradient through its output, n values (a
  ;; multiple of 4).
  (func (export "mask")
    (param $dy i32) (param $y i32) (param $n i32) (param $out i32)
    (local $at i32) (local $bytes i32)
    (local.set $bytes (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $at) (local.get $bytes)))
      (v128.store (i32.add (local.get $out) (local.get $at))
        (v128.and
          (v128.load (i32.add (local.get $dy) (local.get $at)))
          (f32x4.gt (v128.load (i32.add (local.get $y) (local.get $at))) (v128.const f32x4 0 0 0 0))))
      (local.set $at (i32.add (local.get $at) (i32.const 16)))
      (br $l))))
)
