// Numeric helpers of the sampler, kept apart so sampler.ts reads as the sampling stages alone:
// a fast, exact-enough exp(-d) that every probability goes through, and an allocation-free sort.

// exp(-d) for d >= 0, about 2x faster than Math.exp in V8 and within 2 ulp of it: Cody-Waite
// reduction d = n·ln2/256 + r (|r| <= ln2/512), 2^(-n/256) from two tables, exp(-r) by a degree-5
// Taylor polynomial (truncation error < 1e-19 relative). Every probability in this file goes
// through it, so all stages see identical weights.
const EXP_FRAC = Float64Array.from({ length: 256 }, (_, j) => Math.pow(2, -j / 256));
const EXP_POW2 = Float64Array.from({ length: 1076 }, (_, q) => Math.pow(2, -q));
const INV_LN2_256 = 256 / Math.LN2;
const LN2_256_HI = 6.93147180369123816490e-1 / 256; // fdlibm ln2_hi: n * hi is exact for n < 2^21
const LN2_256_LO = 1.90821492927058770002e-10 / 256;

/** exp(-d) for d >= 0 (+Infinity -> 0). */
export function expNeg(d: number): number {
  if (!(d < 745)) return d === d ? 0 : NaN;
  const n = (d * INV_LN2_256 + 0.5) | 0; // round to nearest; d * INV_LN2_256 < 2^19
  const r = d - n * LN2_256_HI - n * LN2_256_LO;
  const p = 1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24 - r * (1 / 120)))));
  return EXP_POW2[n >>> 8]! * EXP_FRAC[n & 255]! * p;
}

/**
 * Sorts a[0..n) ascending in place (introsort: median-of-three quicksort, insertion sort for small
 * ranges, heapsort if the recursion degenerates). No allocation. Exported for tests.
 */
export function sortAscending(a: Float64Array, n: number): void {
  if (n < 2) return;
  let depth = 2;
  for (let k = n; k > 1; k >>>= 1) depth += 2;
  quick(a, 0, n - 1, depth);
}

function quick(a: Float64Array, lo: number, hi: number, depth: number): void {
  while (hi - lo > 16) {
    if (depth-- === 0) {
      heapSort(a, lo, hi);
      return;
    }
    const mid = lo + ((hi - lo) >>> 1);
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    // Hoare partition; a[lo] <= pivot <= a[hi] act as sentinels.
    let i = lo;
    let j = hi;
    for (;;) {
      do i++;
      while (a[i]! < pivot);
      do j--;
      while (a[j]! > pivot);
      if (i >= j) break;
      swap(a, i, j);
    }
    // [lo..j] <= pivot <= [j+1..hi]; recurse into the smaller side, loop on the larger.
    if (j - lo < hi - j) {
      quick(a, lo, j, depth);
      lo = j + 1;
    } else {
      quick(a, j + 1, hi, depth);
      hi = j;
    }
  }
  for (let i = lo + 1; i <= hi; i++) {
    const v = a[i]!;
    let j = i - 1;
    while (j >= lo && a[j]! > v) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = v;
  }
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

function heapSort(a: Float64Array, lo: number, hi: number): void {
  const n = hi - lo + 1;
  for (let s = (n >> 1) - 1; s >= 0; s--) siftDown(a, lo, s, n);
  for (let end = n - 1; end > 0; end--) {
    swap(a, lo, lo + end);
    siftDown(a, lo, 0, end);
  }
}

function siftDown(a: Float64Array, lo: number, start: number, end: number): void {
  let c = start;
  const v = a[lo + c]!;
  for (;;) {
    let l = 2 * c + 1;
    if (l >= end) break;
    if (l + 1 < end && a[lo + l + 1]! > a[lo + l]!) l++;
    if (a[lo + l]! <= v) break;
    a[lo + c] = a[lo + l]!;
    c = l;
  }
  a[lo + c] = v;
}
