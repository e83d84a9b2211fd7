// A baseline JPEG decoder in TypeScript for small images, bit-exact with libjpeg-turbo's defaults as Pillow uses them
// (islow integer IDCT, fancy upsampling, table-based YCbCr->RGB). For CIFAR-sized files it avoids sharp's ~1 ms per-call
// overhead; anything it does not handle (progressive, arithmetic, CMYK, odd sampling) throws UnsupportedJpeg -> sharp.

export class UnsupportedJpeg extends Error {}

const ZIGZAG = Int32Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
  54, 47, 55, 62, 63,
]);

interface Huffman {
  maxcode: Int32Array; // [18], -1 when no codes of that length
  valptr: Int32Array; // [17]
  mincode: Int32Array; // [17]
  values: Uint8Array;
  lookup: Int32Array; // 9-bit fast table: (length << 8) | value, 0 when longer
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  blocksPerLine: number; // in the MCU-padded grid
  blocksPerColumn: number;
  plane: Uint8Array; // blocksPerLine*8 x blocksPerColumn*8 samples
  dcTable: number;
  acTable: number;
  pred: number;
  downW: number; // downsampled_width
  downH: number;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  const lookup = new Int32Array(512);
  let code = 0, k = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    if (n) {
      valptr[len] = k;
      mincode[len] = code;
      for (let i = 0; i < n; i++, k++, code++) {
        if (len <= 9) {
          const shift = 9 - len;
          for (let f = code << shift, e = (code + 1) << shift; f < e; f++) lookup[f] = (len << 8) | values[k]!;
        }
      }
      maxcode[len] = code - 1;
    }
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { maxcode, valptr, mincode, values, lookup };
}

const CONST_BITS = 13, PASS1_BITS = 2;
const FIX_0_298631336 = 2446, FIX_0_390180644 = 3196, FIX_0_541196100 = 4433, FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373, FIX_1_175875602 = 9633, FIX_1_501321110 = 12299, FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069, FIX_2_053119869 = 16819, FIX_2_562915447 = 20995, FIX_3_072711026 = 25172;

const ws = new Int32Array(64);

/** jpeg_idct_islow: coef (natural order, not yet dequantized) * q -> 8x8 samples into out at (x0, y0). */
function idctIslow(coef: Int32Array, q: Int32Array, out: Uint8Array, stride: number, offset: number): void {
  for (let c = 0; c < 8; c++) {
    if (coef[8 + c] === 0 && coef[16 + c] === 0 && coef[24 + c] === 0 && coef[32 + c] === 0 && coef[40 + c] === 0 && coef[48 + c] === 0 && coef[56 + c] === 0) {
      const dc = (coef[c]! * q[c]!) << PASS1_BITS;
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z2 = coef[16 + c]! * q[16 + c]!, z3 = coef[48 + c]! * q[48 + c]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = coef[c]! * q[c]!;
    z3 = coef[32 + c]! * q[32 + c]!;
    let tmp0 = (z2 + z3) << CONST_BITS;
    let tmp1 = (z2 - z3) << CONST_BITS;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = coef[56 + c]! * q[56 + c]!;
    tmp1 = coef[40 + c]! * q[40 + c]!;
    tmp2 = coef[24 + c]! * q[24 + c]!;
    tmp3 = coef[8 + c]! * q[8 + c]!;
    z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336; tmp1 *= FIX_2_053119869; tmp2 *= FIX_3_072711026; tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223; z2 *= -FIX_2_562915447; z3 *= -FIX_1_961570560; z4 *= -FIX_0_390180644;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    const sh = CONST_BITS - PASS1_BITS, rnd = 1 << (sh - 1);
    ws[c] = (tmp10 + tmp3 + rnd) >> sh;
    ws[56 + c] = (tmp10 - tmp3 + rnd) >> sh;
    ws[8 + c] = (tmp11 + tmp2 + rnd) >> sh;
    ws[48 + c] = (tmp11 - tmp2 + rnd) >> sh;
    ws[16 + c] = (tmp12 + tmp1 + rnd) >> sh;
    ws[40 + c] = (tmp12 - tmp1 + rnd) >> sh;
    ws[24 + c] = (tmp13 + tmp0 + rnd) >> sh;
    ws[32 + c] = (tmp13 - tmp0 + rnd) >> sh;
  }
  const sh = CONST_BITS + PASS1_BITS + 3, rnd = 1 << (sh - 1);
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = offset + r * stride;
    if (ws[w + 1] === 0 && ws[w + 2] === 0 && ws[w + 3] === 0 && ws[w + 4] === 0 && ws[w + 5] === 0 && ws[w + 6] === 0 && ws[w + 7] === 0) {
      const v = clampSample(((ws[w]! + (1 << (PASS1_BITS + 2))) >> (PASS1_BITS + 3)) + 128);
      for (let k = 0; k < 8; k++) out[o + k] = v;
      continue;
    }
    let z2 = ws[w + 2]!, z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (ws[w]! + ws[w + 4]!) << CONST_BITS;
    let tmp1 = (ws[w]! - ws[w + 4]!) << CONST_BITS;
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!; tmp1 = ws[w + 5]!; tmp2 = ws[w + 3]!; tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3; z2 = tmp1 + tmp2; z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336; tmp1 *= FIX_2_053119869; tmp2 *= FIX_3_072711026; tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223; z2 *= -FIX_2_562915447; z3 *= -FIX_1_961570560; z4 *= -FIX_0_390180644;
    z3 += z5; z4 += z5;
    tmp0 += z1 + z3; tmp1 += z2 + z4; tmp2 += z2 + z3; tmp3 += z1 + z4;
    out[o] = clampSample(((tmp10 + tmp3 + rnd) >> sh) + 128);
    out[o + 7] = clampSample(((tmp10 - tmp3 + rnd) >> sh) + 128);
    out[o + 1] = clampSample(((tmp11 + tmp2 + rnd) >> sh) + 128);
    out[o + 6] = clampSample(((tmp11 - tmp2 + rnd) >> sh) + 128);
    out[o + 2] = clampSample(((tmp12 + tmp1 + rnd) >> sh) + 128);
    out[o + 5] = clampSample(((tmp12 - tmp1 + rnd) >> sh) + 128);
    out[o + 3] = clampSample(((tmp13 + tmp0 + rnd) >> sh) + 128);
    out[o + 4] = clampSample(((tmp13 - tmp0 + rnd) >> sh) + 128);
  }
}

function clampSample(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// jdcolor.c tables
const CR_R = new Int32Array(256), CB_B = new Int32Array(256), CR_G = new Int32Array(256), CB_G = new Int32Array(256);
{
  const FIX = (x: number): number => Math.trunc(x * 65536 + 0.5);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
    CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
    CR_G[i] = -FIX(0.71414) * x;
    CB_G[i] = -FIX(0.34414) * x + 32768;
  }
}

/** h2v1 / h2v2 fancy upsampling (jdsample.c) of a component to full resolution (2*downW x rows). */
function upsample(c: Component, maxH: number, maxV: number, width: number, height: number): Uint8Array {
  const stride = c.blocksPerLine * 8;
  const src = c.plane;
  const out = new Uint8Array(width * height);
  const dw = c.downW;
  if (c.h === maxH && c.v === maxV) {
    for (let y = 0; y < height; y++) out.set(src.subarray(y * stride, y * stride + width), y * width);
    return out;
  }
  if (maxH !== 2 * c.h || (maxV !== c.v && maxV !== 2 * c.v) || dw <= 2) throw new UnsupportedJpeg('sampling');
  const row = new Uint8Array(2 * dw);
  if (maxV === c.v) {
    // h2v1
    for (let y = 0; y < height; y++) {
      const i = y * stride;
      let inv = src[i]!;
      row[0] = inv;
      row[1] = (inv * 3 + src[i + 1]! + 2) >> 2;
      let o = 2;
      for (let x = 1; x < dw - 1; x++) {
        inv = src[i + x]! * 3;
        row[o++] = (inv + src[i + x - 1]! + 1) >> 2;
        row[o++] = (inv + src[i + x + 1]! + 2) >> 2;
      }
      inv = src[i + dw - 1]!;
      row[o++] = (inv * 3 + src[i + dw - 2]! + 1) >> 2;
      row[o] = inv;
      out.set(row.subarray(0, width), y * width);
    }
    return out;
  }
  // h2v2: each output row mixes the nearest input row (x3) with the next nearest (above or below), edges replicated
  const colsum = new Int32Array(dw);
  for (let y = 0; y < height; y++) {
    const inrow = y >> 1;
    const other = y & 1 ? Math.min(inrow + 1, c.downH - 1) : Math.max(inrow - 1, 0);
    const i0 = inrow * stride, i1 = other * stride;
    for (let x = 0; x < dw; x++) colsum[x] = src[i0 + x]! * 3 + src[i1 + x]!;
    let thiscol = colsum[0]!, nextcol = colsum[1]!;
    row[0] = (thiscol * 4 + 8) >> 4;
    row[1] = (thiscol * 3 + nextcol + 7) >> 4;
    let lastcol = thiscol;
    thiscol = nextcol;
    let o = 2;
    for (let x = 2; x < dw; x++) {
      nextcol = colsum[x]!;
      row[o++] = (thiscol * 3 + lastcol + 8) >> 4;
      row[o++] = (thiscol * 3 + nextcol + 7) >> 4;
      lastcol = thiscol;
      thiscol = nextcol;
    }
    row[o++] = (thiscol * 3 + lastcol + 8) >> 4;
    row[o] = (thiscol * 4 + 7) >> 4;
    out.set(row.subarray(0, width), y * width);
  }
  return out;
}

/** Decode a baseline (SOF0/SOF1, Huffman, 8-bit) JPEG to RGB HWC. Throws UnsupportedJpeg or a corrupt-data Error. */
export function decodeJpeg(data: Uint8Array, maxPixels = Infinity): { data: Uint8Array; width: number; height: number } {
  let pos = 0;
  const u16 = (p: number): number => {
    if (p + 1 >= data.length) throw new Error('premature end of JPEG data');
    return (data[p]! << 8) | data[p + 1]!;
  };
  if (data[0] !== 0xff || data[1] !== 0xd8) throw new Error('not a JPEG (no SOI marker)');
  pos = 2;
  const qt: Int32Array[] = [];
  const dcTables: Huffman[] = [];
  const acTables: Huffman[] = [];
  let comps: Component[] = [];
  let width = 0, height = 0, maxH = 1, maxV = 1, mcusX = 0, mcusY = 0;
  let restartInterval = 0;
  let adobeTransform = -1;
  let frameSeen = false, scanned = false;
  const coef = new Int32Array(64);

  for (;;) {
    if (pos >= data.length) throw new Error('premature end of JPEG data (no EOI marker)');
    if (data[pos] !== 0xff) throw new Error(`corrupt JPEG: expected a marker at byte ${pos}`);
    const marker = data[pos + 1]!;
    pos += 2;
    if (marker === 0xff) { pos--; continue; } // fill byte
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) continue;
    const len = u16(pos);
    const end = pos + len;
    if (end > data.length) throw new Error('premature end of JPEG data in a marker segment');
    let p = pos + 2;
    switch (marker) {
      case 0xdb: // DQT
        while (p < end) {
          const pq = data[p]! >> 4, tq = data[p]! & 15;
          p++;
          const t = new Int32Array(64);
          for (let k = 0; k < 64; k++) {
            t[ZIGZAG[k]!] = pq ? (data[p]! << 8) | data[p + 1]! : data[p]!;
            p += pq ? 2 : 1;
          }
          qt[tq] = t;
        }
        break;
      case 0xc4: // DHT
        while (p < end) {
          const tc = data[p]! >> 4, th = data[p]! & 15;
          const counts = data.subarray(p + 1, p + 17);
          const total = counts.reduce((a, b) => a + b, 0);
          const values = data.slice(p + 17, p + 17 + total);
          (tc === 0 ? dcTables : acTables)[th] = buildHuffman(counts, values);
          p += 17 + total;
        }
        break;
      case 0xc0: case 0xc1: { // baseline / extended sequential, Huffman
        if (frameSeen) throw new UnsupportedJpeg('multiple frames');
        frameSeen = true;
        if (data[p] !== 8) throw new UnsupportedJpeg('not 8-bit');
        height = u16(p + 1);
        width = u16(p + 3);
        const n = data[p + 5]!;
        if (height === 0 || width === 0) throw new UnsupportedJpeg('DNL height');
        if (width * height > maxPixels) throw new UnsupportedJpeg(`${width}x${height} is above ${maxPixels} pixels`);
        if (n !== 1 && n !== 3) throw new UnsupportedJpeg(`${n} components`);
        comps = [];
        for (let i = 0; i < n; i++) {
          const q = p + 6 + i * 3;
          comps.push({ id: data[q]!, h: data[q + 1]! >> 4, v: data[q + 1]! & 15, tq: data[q + 2]!, blocksPerLine: 0, blocksPerColumn: 0, plane: new Uint8Array(0), dcTable: 0, acTable: 0, pred: 0, downW: 0, downH: 0 });
        }
        maxH = Math.max(...comps.map((c) => c.h));
        maxV = Math.max(...comps.map((c) => c.v));
        mcusX = Math.ceil(width / (8 * maxH));
        mcusY = Math.ceil(height / (8 * maxV));
        for (const c of comps) {
          c.blocksPerLine = mcusX * c.h;
          c.blocksPerColumn = mcusY * c.v;
          c.plane = new Uint8Array(c.blocksPerLine * 8 * c.blocksPerColumn * 8);
          c.downW = Math.ceil((width * c.h) / maxH);
          c.downH = Math.ceil((height * c.v) / maxV);
        }
        break;
      }
      case 0xc2: case 0xc3: case 0xc5: case 0xc6: case 0xc7: case 0xc9: case 0xca: case 0xcb: case 0xcd: case 0xce: case 0xcf:
        throw new UnsupportedJpeg(`SOF${marker - 0xc0}`);
      case 0xdd: restartInterval = u16(p); break;
      case 0xee: // Adobe
        if (len >= 14 && String.fromCharCode(...data.subarray(p, p + 5)) === 'Adobe') adobeTransform = data[p + 11]!;
        break;
      case 0xda: { // SOS
        if (!frameSeen) throw new Error('corrupt JPEG: scan before frame header');
        const ns = data[p]!;
        const scomps: Component[] = [];
        for (let i = 0; i < ns; i++) {
          const c = comps.find((x) => x.id === data[p + 1 + i * 2]);
          if (!c) throw new Error('corrupt JPEG: scan names an unknown component');
          c.dcTable = data[p + 2 + i * 2]! >> 4;
          c.acTable = data[p + 2 + i * 2]! & 15;
          c.pred = 0;
          scomps.push(c);
        }
        pos = decodeScan(end, scomps);
        scanned = true;
        continue;
      }
      default: break; // APPn, COM, ...
    }
    pos = end;
  }
  if (!scanned) throw new Error('corrupt JPEG: no image data');
  if (comps.length === 3 && adobeTransform === 0) throw new UnsupportedJpeg('Adobe RGB');

  const out = new Uint8Array(width * height * 3);
  if (comps.length === 1) {
    const c = comps[0]!;
    const stride = c.blocksPerLine * 8;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = c.plane[y * stride + x]!;
        const o = (y * width + x) * 3;
        out[o] = v; out[o + 1] = v; out[o + 2] = v;
      }
    }
    return { data: out, width, height };
  }
  const [Y, Cb, Cr] = comps.map((c) => upsample(c, maxH, maxV, width, height)) as [Uint8Array, Uint8Array, Uint8Array];
  for (let i = 0, o = 0; i < width * height; i++, o += 3) {
    const y = Y[i]!, cb = Cb[i]!, cr = Cr[i]!;
    out[o] = clampSample(y + CR_R[cr]!);
    out[o + 1] = clampSample(y + ((CB_G[cb]! + CR_G[cr]!) >> 16));
    out[o + 2] = clampSample(y + CB_B[cb]!);
  }
  return { data: out, width, height };

  function decodeScan(start: number, scomps: Component[]): number {
    let p = start;
    let bitBuf = 0, bitCnt = 0;
    let hitMarker = false;
    const fill = (): void => {
      // byte-at-a-time with 0xFF00 unstuffing; a marker ends the entropy data (then the stream is short: corrupt)
      while (bitCnt <= 24) {
        let b = 0;
        if (!hitMarker && p < data.length) {
          b = data[p]!;
          if (b === 0xff) {
            const nb = data[p + 1];
            if (nb === 0) p += 2;
            else { hitMarker = true; b = 0; }
          } else p++;
        } else hitMarker = true;
        if (hitMarker) {
          // libjpeg inserts zeros and warns "premature end"; sharp fails on that warning, and so do we
          if (bitCnt > 0) { bitBuf <<= 8; bitCnt += 8; continue; }
          throw new Error('premature end of JPEG data');
        }
        bitBuf = ((bitBuf << 8) | b) >>> 0;
        bitCnt += 8;
      }
    };
    const bits = (n: number): number => {
      if (bitCnt < n) fill();
      bitCnt -= n;
      return (bitBuf >>> bitCnt) & ((1 << n) - 1);
    };
    const decodeHuff = (t: Huffman): number => {
      if (bitCnt < 16) fill();
      const peek = (bitBuf >>> (bitCnt - 9)) & 511;
      const e = t.lookup[peek]!;
      if (e) {
        bitCnt -= e >> 8;
        return e & 255;
      }
      let code = 0;
      for (let len = 1; len <= 16; len++) {
        code = (code << 1) | ((bitBuf >>> (bitCnt - len)) & 1);
        if (code <= t.maxcode[len]! && t.maxcode[len]! >= 0) {
          bitCnt -= len;
          return t.values[t.valptr[len]! + code - t.mincode[len]!]!;
        }
      }
      throw new Error('corrupt JPEG data: bad Huffman code');
    };
    const extend = (v: number, s: number): number => (v < 1 << (s - 1) ? v - (1 << s) + 1 : v);
    const decodeBlock = (c: Component, offset: number): void => {
      const dc = dcTables[c.dcTable], ac = acTables[c.acTable];
      const q = qt[c.tq];
      if (!dc || !ac || !q) throw new Error('corrupt JPEG: missing Huffman or quantization table');
      coef.fill(0);
      const s = decodeHuff(dc);
      if (s > 11) throw new Error('corrupt JPEG data: bad DC size');
      c.pred += s ? extend(bits(s), s) : 0;
      coef[0] = c.pred;
      for (let k = 1; k < 64;) {
        const rs = decodeHuff(ac);
        const r = rs >> 4, sz = rs & 15;
        if (sz === 0) {
          if (r !== 15) break;
          k += 16;
          continue;
        }
        k += r;
        if (k > 63) throw new Error('corrupt JPEG data: coefficient index out of range');
        coef[ZIGZAG[k]!] = extend(bits(sz), sz);
        k++;
      }
      idctIslow(coef, q, c.plane, c.blocksPerLine * 8, offset);
    };
    const single = scomps.length === 1;
    const c0 = scomps[0]!;
    const total = single ? Math.ceil(c0.downW / 8) * Math.ceil(c0.downH / 8) : mcusX * mcusY;
    const perRow = single ? Math.ceil(c0.downW / 8) : mcusX;
    for (let m = 0; m < total; m++) {
      if (restartInterval && m > 0 && m % restartInterval === 0) {
        // byte-align, expect RSTn
        bitCnt = 0; bitBuf = 0; hitMarker = false;
        while (p < data.length && !(data[p] === 0xff && (data[p + 1]! & 0xf8) === 0xd0)) p++;
        if (p >= data.length) throw new Error('corrupt JPEG data: missing restart marker');
        p += 2;
        for (const c of scomps) c.pred = 0;
      }
      const mx = m % perRow, my = (m / perRow) | 0;
      if (single) {
        const stride = c0.blocksPerLine * 8;
        decodeBlock(c0, my * 8 * stride + mx * 8);
      } else {
        for (const c of scomps) {
          const stride = c.blocksPerLine * 8;
          for (let v = 0; v < c.v; v++) for (let h = 0; h < c.h; h++) decodeBlock(c, ((my * c.v + v) * 8) * stride + (mx * c.h + h) * 8);
        }
      }
    }
    // skip to the next marker (after the entropy-coded data)
    while (p < data.length && !(data[p] === 0xff && data[p + 1] !== 0 && !(data[p + 1]! >= 0xd0 && data[p + 1]! <= 0xd7))) p++;
    return p;
  }
}
