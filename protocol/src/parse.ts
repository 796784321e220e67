import type { z } from 'zod';

/** Thrown by {@link parseUnknown}; `issues` keeps zod's detail for callers that map fields to codes. */
export class ParseError extends Error {
  constructor(
    message: string,
    readonly issues: z.core.$ZodIssue[],
  ) {
    super(message);
    this.name = 'ParseError';
  }
}

/** Parses untrusted data with a schema, throwing a {@link ParseError} that reads well in logs and error frames. */
export function parseUnknown<S extends z.ZodType>(schema: S, data: unknown): z.infer<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const first = result.error.issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  throw new ParseError(`${where}${first?.message ?? 'invalid'}`, result.error.issues);
}

/** Parses a JSON text and then the schema; bad JSON throws a ParseError too. */
export function parseJson<S extends z.ZodType>(schema: S, text: string): z.infer<S> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ParseError('not valid JSON', []);
  }
  return parseUnknown(schema, data);
}
