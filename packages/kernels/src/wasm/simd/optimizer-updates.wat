;; Optimiser updates in one pass over the TF.js wasm heap, 4 floats at a time (wasm SIMD).
;; Compiled by scripts/build-wasm.mjs into optimizer-updates.wasm.ts; a test checks the two agree.
;; Pointers are byte offsets into the imported heap; every array holds n float32 values.
(module
  (import "env" "memory" (memory 1))

  ;; m' = beta1 m + (1 - beta1) g;  v' = beta2 v + (1 - beta2) g^2
  ;; p' = keep p - stepScale m' / (sqrt(vScale v') + eps)
  (func (export "adamw")
    (param $p i32) (param $g i32) (param $m i32) (param $v i32)
    (param $pOut i32) (param $mOut i32) (param $vOut i32) (param $n i32)
    (param $beta1 f32) (param $oneMinusBeta1 f32) (param $beta2 f32) (param $oneMinusBeta2 f32)
    (param $keep f32) (param $stepScale f32) (param $vScale f32) (param $eps f32)
    (local $i i32) (local $end i32) (local $at i32)
    (local $gi v128) (local $mi v128) (local $vi v128)
    (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gi (v128.load (i32.add (local.get $g) (local.get $at))))
        (local.set $mi
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $at))) (f32x4.splat (local.get $beta1)))
            (f32x4.mul (local.get $gi) (f32x4.splat (local.get $oneMinusBeta1)))))
        (local.set $vi
          (f32x4.add
            (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $at))) (f32x4.splat (local.get $beta2)))
            (f32x4.mul (f32x4.mul (local.get $gi) (local.get $gi)) (f32x4.splat (local.get $oneMinusBeta2)))))
        (v128.store (i32.add (local.get $mOut) (local.get $at)) (local.get $mi))
        (v128.store (i32.add (local.get $vOut) (local.get $at)) (local.get $vi))
        (v128.store (i32.add (local.get $pOut) (local.get $at))
          (f32x4.sub
            (f32x4.mul (v128.load (i32.add (local.get $p) (local.get $at))) (f32x4.splat (local.get $keep)))
            (f32x4.div
              (f32x4.mul (local.get $mi) (f32x4.splat (local.get $stepScale)))
              (f32x4.add
                (f32x4.sqrt (f32x4.mul (local.get $vi) (f32x4.splat (local.get $vScale))))
                (f32x4.splat (local.get $eps))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $simd)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gs (f32.load (i32.add (local.get $g) (local.get $at))))
        (local.set $ms
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $m) (local.get $at))) (local.get $beta1))
            (f32.mul (local.get $gs) (local.get $oneMinusBeta1))))
        (local.set $vs
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $v) (local.get $at))) (local.get $beta2))
            (f32.mul (f32.mul (local.get $gs) (local.get $gs)) (local.get $oneMinusBeta2))))
        (f32.store (i32.add (local.get $mOut) (local.get $at)) (local.get $ms))
        (f32.store (i32.add (local.get $vOut) (local.get $at)) (local.get $vs))
        (f32.store (i32.add (local.get $pOut) (local.get $at))
          (f32.sub
            (f32.mul (f32.load (i32.add (local.get $p) (local.get $at))) (local.get $keep))
            (f32.div
              (f32.mul (local.get $ms) (local.get $stepScale))
              (f32.add (f32.sqrt (f32.mul (local.get $vs) (local.get $vScale))) (local.get $eps)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail))))

  ;; d = g + wd p;  buf' = momentum buf + d;  p' = p - lr (nesterov ? d + momentum buf' : buf')
  (func (export "sgd_momentum")
    (param $p i32) (param $g i32) (param $buf i32) (param $pOut i32) (param $bufOut i32) (param $n i32)
    (param $lr f32) (param $momentum f32) (param $wd f32) (param $nesterov i32)
    (local $i i32) (local $end i32) (local $at i32)
    (local $pi v128) (local $d v128) (local $b v128)
    (local $ps f32) (local $ds f32) (local $bs f32)
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $simd
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $pi (v128.load (i32.add (local.get $p) (local.get $at))))
        (local.set $d
          (f32x4.add (v128.load (i32.add (local.get $g) (local.get $at))) (f32x4.mul (local.get $pi) (f32x4.splat (local.get $wd)))))
        (local.set $b
          (f32x4.add (f32x4.mul (v128.load (i32.add (local.get $buf) (local.get $at))) (f32x4.splat (local.get $momentum))) (local.get $d)))
        (v128.store (i32.add (local.get $bufOut) (local.get $at)) (local.get $b))
        (v128.store (i32.add (local.get $pOut) (local.get $at))
          (f32x4.sub (local.get $pi)
            (f32x4.mul (f32x4.splat (local.get $lr))
              (select (result v128)
                (f32x4.add (local.get $d) (f32x4.mul (local.get $b) (f32x4.splat (local.get $momentum))))
                (local.get $b)
                (local.get $nesterov)))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $simd)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $ps (f32.load (i32.add (local.get $p) (local.get $at))))
        (local.set $ds (f32.add (f32.load (i32.add (local.get $g) (local.get $at))) (f32.mul (local.get $ps) (local.get $wd))))
        (local.set $bs (f32.add (f32.mul (f32.load (i32.add (local.get $buf) (local.get $at))) (local.get $momentum)) (local.get $ds)))
        (f32.store (i32.add (local.get $bufOut) (local.get $at)) (local.get $bs))
        (f32.store (i32.add (local.get $pOut) (local.get $at))
          (f32.sub (local.get $ps)
            (f32.mul (local.get $lr)
              (select (result f32)
                (f32.add (local.get $ds) (f32.mul (local.get $bs) (local.get $momentum)))
                (local.get $bs)
                (local.get $nesterov)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))))
