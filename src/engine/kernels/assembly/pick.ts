// AssemblyScript source of fast mode's partner pick (cross/fast.ts pickCandidates; built by
// `npm run build` into dist/kernels/pick.wasm). Pointers are byte offsets into the imported
// memory. Rows are independent: the worker pool runs row ranges at once, each part with its own
// scratch (`work`).
//
// Per row it does, per element and in the same order, the float64 operations of the JS loop it
// replaced (written out in test/unit/pick-kernel.test.ts), so the candidates and the noise
// margins are bit-identical: the pooled sums, ρ against every neuron of m on the pooled screen and
// on each live sub-screen, the spread of the pooled top partners across sub-screens, the scores,
// and the pick (the cap-th largest score by selection, then the few at or above it sorted by
// score, pooled ρ, index).

/** Pooled top partners whose spread across sub-screens estimates a row's sampling error (fast.ts TOP_SPREAD). */
const TOP_SPREAD = 16;

/** ρ clamped as clampCorr (cross/common.ts): NaN → 0, then into [−1, 1]. */
@inline function clamp(r: f64): f64 {
  if (r != r) return 0;
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

/**
 * out[j] = clamp((s[j] − (sx·sy[j])/n)·ix·iy[j]) for j < Nm, s float32 (`wide` 0) or float64;
 * returns the maximum (fast.ts corrRow).
 */
function corrRow(out: usize, s: usize, wide: i32, Nm: i32, sx: f64, sy: usize, n: f64, ix: f64, iy: usize): f64 {
  let best: f64 = -Infinity;
  for (let j = 0; j < Nm; j++) {
    const jj = <usize>j << 3;
    const x = wide ? load<f64>(s + jj) : <f64>load<f32>(s + (<usize>j << 2));
    const r = clamp((x - (sx * load<f64>(sy + jj)) / n) * ix * load<f64>(iy + jj));
    store<f64>(out + jj, r);
    if (r > best) best = r;
  }
  return best;
}

/** The k-th largest of a[0..m) (f64; 1 ≤ k ≤ m), by quickselect; reorders a (fast.ts kthLargest). */
function kthLargest(a: usize, m: i32, k: i32): f64 {
  const t = m - k;
  let lo = 0;
  let hi = m - 1;
  while (lo < hi) {
    const pivot = load<f64>(a + (<usize>((lo + hi) >> 1) << 3));
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (load<f64>(a + (<usize>i << 3)) < pivot) i++;
      while (load<f64>(a + (<usize>j << 3)) > pivot) j--;
      if (i <= j) {
        const pi = a + (<usize>i << 3);
        const pj = a + (<usize>j << 3);
        const x = load<f64>(pi);
        store<f64>(pi, load<f64>(pj));
        store<f64>(pj, x);
        i++;
        j--;
      }
    }
    if (t <= j) hi = j;
    else if (t >= i) lo = i;
    else break;
  }
  return load<f64>(a + (<usize>t << 3));
}

/** Whether index a goes before index b: larger score, then larger pooled ρ, then lower index (pick's order). */
@inline function before(score: usize, row: usize, a: i32, b: i32): bool {
  const sa = load<f64>(score + (<usize>a << 3));
  const sb = load<f64>(score + (<usize>b << 3));
  if (sa != sb) return sa > sb;
  const ra = load<f64>(row + (<usize>a << 3));
  const rb = load<f64>(row + (<usize>b << 3));
  if (ra != rb) return ra > rb;
  return a < b;
}

/** Heap sort of the indices idx[0..m) into pick's order (a total order: any correct sort agrees). */
function sortPicked(idx: usize, m: i32, score: usize, row: usize): void {
  // Max-heap on "goes after", so the root is the last in order and is moved to the end.
  for (let s = (m >> 1) - 1; s >= 0; s--) siftDown(idx, s, m, score, row);
  for (let end = m - 1; end > 0; end--) {
    const x = load<i32>(idx);
    store<i32>(idx, load<i32>(idx + (<usize>end << 2)));
    store<i32>(idx + (<usize>end << 2), x);
    siftDown(idx, 0, end, score, row);
  }
}

function siftDown(idx: usize, start: i32, m: i32, score: usize, row: usize): void {
  let p = start;
  for (;;) {
    let c = 2 * p + 1;
    if (c >= m) return;
    const vc = load<i32>(idx + (<usize>c << 2));
    if (c + 1 < m) {
      const vd = load<i32>(idx + (<usize>(c + 1) << 2));
      if (before(score, row, vc, vd)) c++; // the later of the two
    }
    const vp = load<i32>(idx + (<usize>p << 2));
    const vm = load<i32>(idx + (<usize>c << 2));
    if (!before(score, row, vp, vm)) return;
    store<i32>(idx + (<usize>p << 2), vm);
    store<i32>(idx + (<usize>c << 2), vp);
    p = c;
  }
}

/**
 * Partner candidates of rows [r0, r1) of a chunk of qn reference rows against Nm neurons of m.
 *
 * - Sub-screens (S ≥ 1): sub-screen s's sums of row r are float32 at subs + 4·(s·qn + r)·Nm, its
 *   Σx and 1/σ_x at subSx/subIx[s·qn + r] (1/σ = 0: not live for the row, or not a part of the
 *   screen), its Σy and 1/σ_y at subSy/subIy + 8·s·Nm, its token count at subN[s]. The pooled
 *   sums are their float64 sum, in order.
 * - No sub-screens (S = 0): the pooled sums are float64 at pooled + 8·r·Nm.
 * - The pooled screen: Σx, 1/σ_x per row (sx, ix), Σy, 1/σ_y per neuron (sy, iy), n tokens.
 *
 * Writes each row's candidates, best first, at out + 4·r·outCap, their count into count[r] (−1
 * for a row with ix = 0, whose candidates are all of m) and z·√2·σ into noise[r]. `work`: this
 * part's scratch, (S + 5)·8·Nm + 4·Nm + 8·S bytes.
 */
export function pickPartners(
  S: i32, Nm: i32, qn: i32, r0: i32, r1: i32,
  subs: usize, subSx: usize, subIx: usize, subSy: usize, subIy: usize, subN: usize,
  pooled: usize, sx: usize, ix: usize, sy: usize, iy: usize, n: f64,
  margin: f64, z: f64, low: f64, cap: i32, outCap: i32,
  work: usize, out: usize, count: usize, noise: usize,
): void {
  const row8 = <usize>Nm << 3;
  const sum = work; // the pooled sums of a row
  const row = sum + row8; // its pooled ρ
  const score = row + row8;
  const scratch = score + row8;
  const rk = scratch + row8; // the live sub-screens' ρ rows, S of them
  const idx = rk + <usize>S * row8;
  const bk = idx + (<usize>Nm << 2); // their maxima
  const topV = bk + (<usize>S << 3);
  const topJ = topV + (TOP_SPREAD << 3);
  const lim: f64 = margin > 0 ? -1 : 0;
  for (let r = r0; r < r1; r++) {
    const o8 = <usize>r << 3;
    const ixr = load<f64>(ix + o8);
    if (ixr == 0) {
      store<i32>(count + (<usize>r << 2), -1);
      store<f64>(noise + o8, 0);
      continue;
    }
    let src = sum;
    if (S > 0) {
      for (let j = 0; j < Nm; j++) store<f64>(sum + (<usize>j << 3), 0);
      for (let s = 0; s < S; s++) {
        const u = subs + ((<usize>(s * qn + r) * <usize>Nm) << 2);
        for (let j = 0; j < Nm; j++) {
          const p = sum + (<usize>j << 3);
          store<f64>(p, load<f64>(p) + <f64>load<f32>(u + (<usize>j << 2)));
        }
      }
    } else {
      src = pooled + <usize>r * row8;
    }
    const best = corrRow(row, src, 1, Nm, load<f64>(sx + o8), sy, n, ixr, iy);
    let nLive = 0;
    for (let s = 0; s < S; s++) {
      const q = <usize>(s * qn + r) << 3;
      const ixs = load<f64>(subIx + q);
      if (ixs == 0) continue;
      const u = subs + ((<usize>(s * qn + r) * <usize>Nm) << 2);
      const so = <usize>s * row8;
      const b = corrRow(rk + <usize>nLive * row8, u, 0, Nm, load<f64>(subSx + q), subSy + so, load<f64>(subN + (<usize>s << 3)), ixs, subIy + so);
      store<f64>(bk + (<usize>nLive << 3), b);
      nLive++;
    }
    // spread(): the pooled row's TOP_SPREAD largest (value, then lower index first), the sample
    // variance of each across the live sub-screens, averaged, over K; its root.
    let sp: f64 = 0;
    if (nLive >= 2) {
      let t = 0;
      for (let j = 0; j < Nm; j++) {
        const v = load<f64>(row + (<usize>j << 3));
        if (t == TOP_SPREAD && !(v > load<f64>(topV + ((TOP_SPREAD - 1) << 3)))) continue;
        // Insert after every kept value ≥ v (they have lower indices).
        let at = t < TOP_SPREAD ? t : TOP_SPREAD - 1;
        while (at > 0 && load<f64>(topV + (<usize>(at - 1) << 3)) < v) {
          store<f64>(topV + (<usize>at << 3), load<f64>(topV + (<usize>(at - 1) << 3)));
          store<i32>(topJ + (<usize>at << 2), load<i32>(topJ + (<usize>(at - 1) << 2)));
          at--;
        }
        store<f64>(topV + (<usize>at << 3), v);
        store<i32>(topJ + (<usize>at << 2), j);
        if (t < TOP_SPREAD) t++;
      }
      const K = <f64>nLive;
      let v: f64 = 0;
      for (let q = 0; q < t; q++) {
        const jj = <usize>load<i32>(topJ + (<usize>q << 2)) << 3;
        let s1: f64 = 0;
        let s2: f64 = 0;
        for (let k = 0; k < nLive; k++) {
          const x = load<f64>(rk + <usize>k * row8 + jj);
          s1 += x;
          s2 += x * x;
        }
        v += max<f64>(0, s2 - (s1 * s1) / K) / (K - 1);
      }
      sp = Math.sqrt(v / <f64>t / K);
    }
    const nz = z * Math.SQRT2 * sp;
    store<f64>(noise + o8, nz);
    const mi: f64 = margin > 0 ? max<f64>(max<f64>(margin, nz), low * (1 - best * best)) : 0;
    if (mi > 0) {
      for (let j = 0; j < Nm; j++) store<f64>(score + (<usize>j << 3), (load<f64>(row + (<usize>j << 3)) - best) / mi);
    } else {
      for (let j = 0; j < Nm; j++) store<f64>(score + (<usize>j << 3), load<f64>(row + (<usize>j << 3)) - best);
    }
    for (let k = 0; k < nLive; k++) {
      const rr = rk + <usize>k * row8;
      const b = load<f64>(bk + (<usize>k << 3));
      for (let j = 0; j < Nm; j++) {
        const jj = <usize>j << 3;
        const v = margin > 0 ? (load<f64>(rr + jj) - b) / margin : load<f64>(rr + jj) - b;
        if (v > load<f64>(score + jj)) store<f64>(score + jj, v);
      }
    }
    // pick(score, lim, cap, row).
    let m = 0;
    for (let j = 0; j < Nm; j++) {
      const v = load<f64>(score + (<usize>j << 3));
      if (v >= lim) {
        store<f64>(scratch + (<usize>m << 3), v);
        m++;
      }
    }
    const thr = m > cap ? max<f64>(lim, kthLargest(scratch, m, cap)) : lim;
    let c = 0;
    for (let j = 0; j < Nm; j++) {
      if (load<f64>(score + (<usize>j << 3)) >= thr) {
        store<i32>(idx + (<usize>c << 2), j);
        c++;
      }
    }
    sortPicked(idx, c, score, row);
    const k = c < outCap ? c : outCap;
    memory.copy(out + ((<usize>r * <usize>outCap) << 2), idx, <usize>k << 2);
    store<i32>(count + (<usize>r << 2), k);
  }
}

/**
 * Fast mode's rotated-neuron candidates of one layer (cross/fast.ts rotatedCandidates), rows
 * [r0, r1) of the fp32 products P [rows × d] of the centred covariances with R_l: ρ_k =
 * clamp(P[r,k]·ix[r]·irv[k]); the row's maximum so far best[r] is raised to this layer's largest
 * ρ, and every k with ρ_k ≥ best[r] − widen[r] is written, in k order, to outK/outV at r·d (its
 * count into nc[r]).
 */
export function rotatedKeep(
  P: usize, d: i32, r0: i32, r1: i32,
  ix: usize, irv: usize, best: usize, widen: usize,
  outK: usize, outV: usize, nc: usize,
): void {
  for (let r = r0; r < r1; r++) {
    const o8 = <usize>r << 3;
    const xi = load<f64>(ix + o8);
    const row = P + ((<usize>r * <usize>d) << 2);
    const vals = outV + ((<usize>r * <usize>d) << 3);
    const ks = outK + ((<usize>r * <usize>d) << 2);
    let b = load<f64>(best + o8);
    for (let k = 0; k < d; k++) {
      const rho = clamp(<f64>load<f32>(row + (<usize>k << 2)) * xi * load<f64>(irv + (<usize>k << 3)));
      store<f64>(vals + (<usize>k << 3), rho);
      if (rho > b) b = rho;
    }
    store<f64>(best + o8, b);
    const lim = b - load<f64>(widen + o8);
    let w = 0;
    for (let k = 0; k < d; k++) {
      const rho = load<f64>(vals + (<usize>k << 3));
      if (rho >= lim) {
        store<f64>(vals + (<usize>w << 3), rho);
        store<i32>(ks + (<usize>w << 2), k);
        w++;
      }
    }
    store<i32>(nc + (<usize>r << 2), w);
  }
}
