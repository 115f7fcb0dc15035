import { readFileSync } from 'node:fs';
import { VerificationError } from '../errors.js';

/**
 * Checking a download: the SHA256SUMS format (`<hex>  <name>` or
 * `<hex> *<name>`), and a detached OpenPGP signature of it checked with the
 * openpgp library against systemd's import keyring (no gpg binary).
 */

export function expectedDigest(sums: Buffer, fileName: string, source: string): string {
  for (const line of sums.toString('utf8').split('\n')) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+)$/.exec(line.trimEnd());
    if (m && m[2] === fileName) return m[1]!.toLowerCase();
  }
  throw new VerificationError(`${source} has no checksum for ${JSON.stringify(fileName)}`);
}

/** The first keyring that exists: /etc/systemd/import-pubring.gpg overrides /usr/lib/systemd/import-pubring.gpg. */
export const KEYRINGS = ['/etc/systemd/import-pubring.gpg', '/usr/lib/systemd/import-pubring.gpg'];

export function readKeyring(paths: readonly string[] = KEYRINGS): Buffer {
  for (const p of paths) {
    try {
      return readFileSync(p);
    } catch {}
  }
  throw new VerificationError(`No keyring to check signatures with (looked for ${paths.join(', ')})`);
}

/** Throws VerificationError unless `signature` (binary or armored) is a good signature of `data` by a key in `keyring`. */
export async function verifySignature(data: Buffer, signature: Buffer, keyring: Buffer): Promise<void> {
  // Loaded on first use: most transfers never check a signature, and openpgp costs ~40 ms to load.
  const { createMessage, readKeys, readSignature, verify } = await import('openpgp');
  let keys: Awaited<ReturnType<typeof readKeys>>;
  let sig: Awaited<ReturnType<typeof readSignature>>;
  try {
    const armored = (b: Buffer) => b.subarray(0, 40).toString('latin1').includes('-----BEGIN PGP');
    keys = armored(keyring)
      ? await readKeys({ armoredKeys: keyring.toString('utf8') })
      : await readKeys({ binaryKeys: new Uint8Array(keyring) });
    sig = armored(signature)
      ? await readSignature({ armoredSignature: signature.toString('utf8') })
      : await readSignature({ binarySignature: new Uint8Array(signature) });
  } catch (e) {
    throw new VerificationError(`Cannot read the signature or keyring: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const message = await createMessage({ binary: new Uint8Array(data) });
  const result = await verify({ message, signature: sig, verificationKeys: keys, format: 'binary' });
  // Good when any signature is good and made by a key of the keyring (as gpg --verify).
  let why = 'the signature file holds no signature';
  for (const s of result.signatures) {
    try {
      await s.verified;
      return;
    } catch (e) {
      why = (e as Error).message;
    }
  }
  throw new VerificationError(`Bad signature: ${why}`);
}
