import { createRequire } from 'node:module'
import { deflateRawSync, inflateRawSync } from 'node:zlib'

/** How a block's payload is compressed; stored with the block, so a file mixes them freely. */
export const CODECS = { deflate: 1, zstd: 2 } as const
export type CodecId = typeof CODECS[keyof typeof CODECS]

interface Zstd {
  compress: (data: Uint8Array, params?: { compressionLevel?: number }) => Buffer
  decompress: (data: Uint8Array) => Buffer
}

/**
 * zstd-napi when it loaded (a native addon built at install time); Node 20's zlib has no zstd.
 * Level 1 of each: on 200k real-shaped INFO events in blocks of 4,096, the documents and raw
 * lines took 35.5 bytes per event with zstd-1 and 59.2 with deflate-raw-1, in about the same
 * CPU (1.2 vs 1.4 s including JSON.stringify); zstd-3 was larger (40.5: its longer matches
 * lost to level 1's faster strategy on this data) and slower.
 */
const zstd: Zstd | undefined = (() => {
  try {
    return createRequire(import.meta.url)('zstd-napi') as Zstd
  } catch {
    return undefined
  }
})()

/** Whether zstd-napi loaded (blocks can be written and read with zstd). */
export const ZSTD_AVAILABLE = zstd !== undefined

/** The codec new blocks are written with unless the store's `compression` says otherwise. */
export const WRITE_CODEC: CodecId = zstd === undefined ? CODECS.deflate : CODECS.zstd

export function compress (data: Buffer, codec: CodecId = WRITE_CODEC): Buffer {
  if (codec === CODECS.zstd) {
    if (zstd === undefined) throw new Error('zstd is not available in this keatrail (zstd-napi did not load)')
    return zstd.compress(data, { compressionLevel: 1 })
  }
  return deflateRawSync(data, { level: 1 })
}

export function decompress (data: Uint8Array, codec: number): Buffer {
  if (codec === CODECS.zstd) {
    if (zstd === undefined) throw new Error('this block is zstd-compressed and zstd-napi did not load: reinstall keatrail (npm ci) so that it builds')
    return zstd.decompress(data)
  }
  if (codec === CODECS.deflate) return inflateRawSync(data)
  throw new Error(`block codec ${codec} is unknown to this keatrail`)
}
