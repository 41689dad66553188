;; GELU (tanh form) and layer normalisation, forward and backward, each one pass over the TF.js
;; wasm heap, 4 floats at a time (wasm SIMD). Compiled by scripts/build-wasm.mjs into
;; transformer-ops.wasm.ts; a test checks the two agree. Pointers are byte offsets into the
;; imported heap.
;;
;; Why: in tensor ops GELU is 6 kernels forward and about 20 backward (each a pass over
;; [tokens, 4d] and a dispatch), layer norm 9 forward and 16 backward.
(module
  (import "env" "memory" (memory 1))

  ;; GELU, tanh form, as x sigmoid(2u): 2u = x (k + k c x^2), k = 2 sqrt(2/pi), c = 0.044715.
  ;; The sigmoid is the wasm backend's own (XNNPACK's vectorised one, about 3x faster than an exp
  ;; polynomial written here in 128-bit SIMD without FMA); these loops do the rest.

  ;; z[i] = 2u(x[i]), n values.
  (func (export "gelu_arg")
    (param $x i32) (param $z i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $v v128) (local $s f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $at))))
        (v128.store (i32.add (local.get $z) (local.get $at))
          (f32x4.mul
            (local.get $v)
            (f32x4.add
              (f32x4.splat (f32.const 1.59576912))
              (f32x4.mul (f32x4.mul (local.get $v) (local.get $v)) (f32x4.splat (f32.const 0.0713548163))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $simd)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $s (f32.load (i32.add (local.get $x) (local.get $at))))
        (f32.store (i32.add (local.get $z) (local.get $at))
          (f32.mul
            (local.get $s)
            (f32.add
              (f32.const 1.59576912)
              (f32.mul (f32.mul (local.get $s) (local.get $s)) (f32.const 0.0713548163)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; y[i] = x[i] s[i], n values.
  (func (export "mul")
    (param $x i32) (param $s i32) (param $y i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (v128.store (i32.add (local.get $y) (local.get $at))
          (f32x4.mul
            (v128.load (i32.add (local.get $x) (local.get $at)))
            (v128.load (i32.add (local.get $s) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $simd)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (f32.store (i32.add (local.get $y) (local.get $at))
          (f32.mul
            (f32.load (i32.add (local.get $x) (local.get $at)))
            (f32.load (i32.add (local.get $s) (local.get $at)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; dx = dy d/dx[x s(2u)] = dy (s + x s (1 - s) (k + 3 k c x^2)), with s = sigmoid(2u) kept
  ;; from the forward pass.
  (func $geluBwd4 (param $x v128) (param $s v128) (param $dy v128) (result v128)
    (f32x4.mul
      (local.get $dy)
      (f32x4.add
        (local.get $s)
        (f32x4.mul
          (f32x4.mul (local.get $x) (f32x4.mul (local.get $s) (f32x4.sub (f32x4.splat (f32.const 1)) (local.get $s))))
          (f32x4.add
            (f32x4.splat (f32.const 1.59576912))
            (f32x4.mul (f32x4.mul (local.get $x) (local.get $x)) (f32x4.splat (f32.const 0.214064449))))))))

  ;; n values; a tail of n mod 4 values goes through the same vector code in lane 0.
  (func (export "gelu_grad")
    (param $x i32) (param $s i32) (param $dy i32) (param $dx i32) (param $n i32)
    (local $i i32) (local $end i32) (local $at i32) (local $xv v128) (local $sv v128)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        ;; $geluBwd4 written out: V8 (Node 20) does not inline wasm calls, and the call costs more
        ;; than the arithmetic
        (local.set $xv (v128.load (i32.add (local.get $x) (local.get $at))))
        (local.set $sv (v128.load (i32.add (local.get $s) (local.get $at))))
        (v128.store (i32.add (local.get $dx) (local.get $at))
          (f32x4.mul
            (v128.load (i32.add (local.get $dy) (local.get $at)))
            (f32x4.add
              (local.get $sv)
              (f32x4.mul
                (f32x4.mul
                  (local.get $xv)
                  (f32x4.mul (local.get $sv) (f32x4.sub (f32x4.splat (f32.const 1)) (local.get $sv))))
                (f32x4.add
                  (f32x4.splat (f32.const 1.59576912))
                  (f32x4.mul (f32x4.mul (local.get $xv) (local.get $xv)) (f32x4.splat (f32.const 0.214064449))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $simd)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (f32.store (i32.add (local.get $dx) (local.get $at))
          (f32x4.extract_lane 0
            (call $geluBwd4
              (f32x4.splat (f32.load (i32.add (local.get $x) (local.get $at))))
              (f32x4.splat (f32.load (i32.add (local.get $s) (local.get $at))))
              (f32x4.splat (f32.load (i32.add (local.get $dy) (local.get $at)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; Layer norm over rows of `cols` values (cols a multiple of 4; the caller checks):
  ;; y = (x - mean) rstd gamma + beta, rstd = 1 / sqrt(var + eps) (biased variance, two passes
  ;; over the row as in the tensor-op form); mean[r] and rstd[r] are kept for the gradient.
  (func (export "layer_norm")
    (param $x i32) (param $gamma i32) (param $beta i32) (param $y i32) (param $mean i32) (param $rstd i32)
    (param $rows i32) (param $cols i32) (param $eps f32)
    (local $r i32) (local $j i32) (local $row i32) (local $at i32) (local $rowBytes i32)
    (local $acc v128) (local $d v128) (local $m f32) (local $s f32) (local $mv v128) (local $sv v128)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.mul (local.get $r) (local.get $rowBytes)))
        ;; mean
        (local.set $acc (f32x4.splat (f32.const 0)))
        (local.set $j (i32.const 0))
        (block $d1
          (loop $l1
            (br_if $d1 (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $acc
              (f32x4.add (local.get $acc) (v128.load (i32.add (local.get $x) (i32.add (local.get $row) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $l1)))
        (local.set $m (f32.div (call $hsum (local.get $acc)) (f32.convert_i32_u (local.get $cols))))
        (local.set $mv (f32x4.splat (local.get $m)))
        ;; variance of the centred row
        (local.set $acc (f32x4.splat (f32.const 0)))
        (local.set $j (i32.const 0))
        (block $d2
          (loop $l2
            (br_if $d2 (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $d
              (f32x4.sub (v128.load (i32.add (local.get $x) (i32.add (local.get $row) (local.get $j)))) (local.get $mv)))
            (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $l2)))
        (local.set $s
          (f32.div
            (f32.const 1)
            (f32.sqrt
              (f32.add (f32.div (call $hsum (local.get $acc)) (f32.convert_i32_u (local.get $cols))) (local.get $eps)))))
        (local.set $sv (f32x4.splat (local.get $s)))
        (f32.store (i32.add (local.get $mean) (i32.shl (local.get $r) (i32.const 2))) (local.get $m))
        (f32.store (i32.add (local.get $rstd) (i32.shl (local.get $r) (i32.const 2))) (local.get $s))
        ;; y
        (local.set $j (i32.const 0))
        (block $d3
          (loop $l3
            (br_if $d3 (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $at (i32.add (local.get $row) (local.get $j)))
            (v128.store (i32.add (local.get $y) (local.get $at))
              (f32x4.add
                (f32x4.mul
                  (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $at))) (local.get $mv)) (local.get $sv))
                  (v128.load (i32.add (local.get $gamma) (local.get $j))))
                (v128.load (i32.add (local.get $beta) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $l3)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowLoop))))

  ;; The layer norm gradient, with xhat = (x - mean) rstd recomputed and g = dy gamma:
  ;;   dx = rstd (g - mean(g) - xhat mean(g xhat)),  dgamma += dy xhat,  dbeta += dy.
  ;; dgamma and dbeta ([cols]) are zeroed here, then summed over the rows.
  (func (export "layer_norm_grad")
    (param $x i32) (param $mean i32) (param $rstd i32) (param $gamma i32) (param $dy i32)
    (param $dx i32) (param $dgamma i32) (param $dbeta i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $j i32) (local $row i32) (local $at i32) (local $rowBytes i32)
    (local $mv v128) (local $sv v128) (local $xh v128) (local $dyv v128) (local $g v128)
    (local $accG v128) (local $accGx v128) (local $mg v128) (local $mgx v128) (local $inv f32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $inv (f32.div (f32.const 1) (f32.convert_i32_u (local.get $cols))))
    (local.set $j (i32.const 0))
    (block $z
      (loop $zl
        (br_if $z (i32.ge_u (local.get $j) (local.get $rowBytes)))
        (v128.store (i32.add (local.get $dgamma) (local.get $j)) (f32x4.splat (f32.const 0)))
        (v128.store (i32.add (local.get $dbeta) (local.get $j)) (f32x4.splat (f32.const 0)))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $zl)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $row (i32.mul (local.get $r) (local.get $rowBytes)))
        (local.set $mv (f32x4.splat (f32.load (i32.add (local.get $mean) (i32.shl (local.get $r) (i32.const 2))))))
        (local.set $sv (f32x4.splat (f32.load (i32.add (local.get $rstd) (i32.shl (local.get $r) (i32.const 2))))))
        ;; sums of g and g xhat over the row; dgamma and dbeta along the way
        (local.set $accG (f32x4.splat (f32.const 0)))
        (local.set $accGx (f32x4.splat (f32.const 0)))
        (local.set $j (i32.const 0))
        (block $d1
          (loop $l1
            (br_if $d1 (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $at (i32.add (local.get $row) (local.get $j)))
            (local.set $xh
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $at))) (local.get $mv)) (local.get $sv)))
            (local.set $dyv (v128.load (i32.add (local.get $dy) (local.get $at))))
            (local.set $g (f32x4.mul (local.get $dyv) (v128.load (i32.add (local.get $gamma) (local.get $j)))))
            (local.set $accG (f32x4.add (local.get $accG) (local.get $g)))
            (local.set $accGx (f32x4.add (local.get $accGx) (f32x4.mul (local.get $g) (local.get $xh))))
            (v128.store (i32.add (local.get $dgamma) (local.get $j))
              (f32x4.add
                (v128.load (i32.add (local.get $dgamma) (local.get $j)))
                (f32x4.mul (local.get $dyv) (local.get $xh))))
            (v128.store (i32.add (local.get $dbeta) (local.get $j))
              (f32x4.add (v128.load (i32.add (local.get $dbeta) (local.get $j))) (local.get $dyv)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $l1)))
        (local.set $mg (f32x4.splat (f32.mul (call $hsum (local.get $accG)) (local.get $inv))))
        (local.set $mgx (f32x4.splat (f32.mul (call $hsum (local.get $accGx)) (local.get $inv))))
        (local.set $j (i32.const 0))
        (block $d2
          (loop $l2
            (br_if $d2 (i32.ge_u (local.get $j) (local.get $rowBytes)))
            (local.set $at (i32.add (local.get $row) (local.get $j)))
            (local.set $xh
              (f32x4.mul (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $at))) (local.get $mv)) (local.get $sv)))
            (local.set $g
              (f32x4.mul (v128.load (i32.add (local.get $dy) (local.get $at))) (v128.load (i32.add (local.get $gamma) (local.get $j)))))
            (v128.store (i32.add (local.get $dx) (local.get $at))
              (f32x4.mul
                (f32x4.sub (f32x4.sub (local.get $g) (local.get $mg)) (f32x4.mul (local.get $xh) (local.get $mgx)))
                (local.get $sv)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $l2)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowLoop)))))
