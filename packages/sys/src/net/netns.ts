import { CLONE } from '../constants.js';
import { closeQuietly } from '../fd/fd.js';
import { openNamespace, setns, unshare } from '../proc/ns.js';

/**
 * A new, empty network namespace, returned as an fd (only `lo`, down). The
 * main thread unshares into it just long enough to open it and then goes
 * back, so nothing else of the process changes. The namespace lives as long
 * as the fd, or a process or a link inside it.
 */
export function createNetworkNamespace(): number {
  const own = openNamespace('thread-self', 'net');
  try {
    unshare(CLONE.NEWNET);
    try {
      return openNamespace('thread-self', 'net');
    } finally {
      setns(own, CLONE.NEWNET);
    }
  } finally {
    closeQuietly(own);
  }
}
