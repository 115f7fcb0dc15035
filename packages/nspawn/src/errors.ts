import { SdError } from '@sd/sys';

/** A container that cannot be set up or run as asked; `code` says why. */
export class NspawnError extends SdError {}
