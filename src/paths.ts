import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let root: string | undefined

/** The package root (where parsers/, mappings/ live), from src/ or from dist/src/. */
export function packageRoot (): string {
  if (root !== undefined) return root
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'parsers'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('keatrail package root not found above ' + fileURLToPath(import.meta.url))
    dir = up
  }
  root = dir
  return dir
}

/** keatrail's version, from its package.json. */
export function version (): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version
}
