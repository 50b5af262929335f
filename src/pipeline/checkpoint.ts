import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * A small JSON document of read positions, written atomically: temp file, fsync, rename, fsync
 * of the directory (Vector's checkpointer does the same). A reader sees the old or the new
 * version, never a torn one. Positions only ever move after the store acknowledged the events.
 */
export class CheckpointFile<T extends object> {
  readonly path: string
  /** Set when the file existed but could not be read: callers re-read and rely on event ids. */
  corrupt: string | undefined

  constructor (path: string) {
    this.path = path
    mkdirSync(dirname(path), { recursive: true })
  }

  load (): T | undefined {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      this.corrupt = (err as Error).message
      return undefined
    }
    try {
      const v = JSON.parse(text) as unknown
      if (v === null || typeof v !== 'object') throw new Error('not an object')
      return v as T
    } catch (err) {
      this.corrupt = (err as Error).message
      return undefined
    }
  }

  save (value: T): void {
    const tmp = `${this.path}.tmp`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, JSON.stringify(value))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, this.path)
    const dir = openSync(dirname(this.path), 'r')
    try { fsyncSync(dir) } finally { closeSync(dir) }
  }
}
