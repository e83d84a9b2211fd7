// Image buffers that flow through the pipeline: 8-bit RGB in HWC order (what PIL holds) and float CHW tensors.
// Transforms before ToTensor work on RgbImage, after it on TensorImage, as torchvision does with PIL images and tensors.

/** 8-bit RGB, row-major HWC: data.length === height * width * 3. */
export interface RgbImage {
  readonly kind: 'rgb';
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Float image in CHW order (a torch tensor of shape [C, H, W]). */
export interface TensorImage {
  readonly kind: 'tensor';
  readonly data: Float32Array;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

export type PipelineImage = RgbImage | TensorImage;

export function rgbImage(data: Uint8Array, width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`[rgbImage] expected positive integer size, got ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`[rgbImage] expected ${width * height * 3} bytes for ${width}x${height}x3, got ${data.length}`);
  }
  return { kind: 'rgb', data, width, height };
}

export function tensorImage(data: Float32Array, channels: number, height: number, width: number): TensorImage {
  if (data.length !== channels * height * width) {
    throw new Error(`[tensorImage] expected ${channels * height * width} values for [${channels}, ${height}, ${width}], got ${data.length}`);
  }
  return { kind: 'tensor', data, channels, height, width };
}

/** Python's round(): half to even, as torchvision's int(round(...)) uses. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}
