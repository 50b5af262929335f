import type { z } from 'zod'
import { ConfigInvalidError } from '../errors.js'

/**
 * Validates one component's config with its zod schema; a failure names the field by its full
 * path (`sources.kea4.include`, `store.sqlite.synchronous`) so bad config fails at start clearly.
 */
export function validateConfig<S extends z.ZodType> (schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const field = (issue?.path ?? []).map(String).join('.')
  // "keatrail.yaml: sources.0.include" for a file, "store.sqlite.synchronous" for a component.
  const at = where.endsWith(':') ? `${where} ${field === '' ? '(top level)' : field}` : [where, field].filter((p) => p !== '').join('.')
  const extra = issue?.code === 'unrecognized_keys' ? ` (${issue.keys.join(', ')})` : ''
  throw new ConfigInvalidError(at, `${issue?.message ?? 'invalid'}${extra}`)
}
