import { InvalidArgumentError } from '@sd/sys';

const TRUE = new Set(['1', 'yes', 'y', 'true', 't', 'on']);
const FALSE = new Set(['0', 'no', 'n', 'false', 'f', 'off']);

/** A boolean as systemd's parse_boolean() reads it (case-insensitive); undefined for anything else. */
export function tryParseBoolean(value: string): boolean | undefined {
  const v = value.toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return undefined;
}

/** parse_boolean(), throwing an error that names `what` (e.g. "--register=" or "ReadOnly=") and the value. */
export function parseBoolean(value: string, what = 'boolean'): boolean {
  const b = tryParseBoolean(value);
  if (b === undefined)
    throw new InvalidArgumentError(`Failed to parse ${what} argument: ${JSON.stringify(value)}`);
  return b;
}
