// The range check every ByteSource makes, and `read` built on `readInto` (files, the read-ahead).
import { SafetensorsError } from '../errors.js';

/** Throws a SafetensorsError naming `name` unless [offset, offset + length) lies in a file of `size` bytes. */
export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new SafetensorsError(`${name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > size) {
    throw new SafetensorsError(`${name}: unexpected end of file: wanted ${length} bytes at offset ${offset}, but the file has ${size} bytes`);
  }
}

/** A ByteSource's `read` on top of its `readInto`: the range is checked before a buffer of `length` bytes is
 *  allocated (a bad length is a SafetensorsError, never a RangeError or a huge allocation), then filled. */
export function readByCopy(name: string, size: () => Promise<number>, readInto: (offset: number, target: Uint8Array) => Promise<void>): (offset: number, length: number) => Promise<Uint8Array> {
  return async (offset, length) => {
    checkRange(name, await size(), offset, length);
    const out = new Uint8Array(length);
    await readInto(offset, out);
    return out;
  };
}

/** A copy of bytes [start, end) of `b` in a new buffer of its own. Not `b.slice()`: a Node Buffer (what readFileSync
 *  returns, often handed to memorySource) overrides slice() to return a view, whose `.buffer` is the whole file. */
export function copyBytes(b: Uint8Array, start = 0, end = b.byteLength): Uint8Array<ArrayBuffer> {
  return Uint8Array.prototype.slice.call(b, start, end) as Uint8Array<ArrayBuffer>;
}
