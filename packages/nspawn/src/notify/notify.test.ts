import { describe, expect, it } from 'vitest';
import { parseNotifyMessage } from './notify.js';

describe('parseNotifyMessage', () => {
  it('reads VAR=VALUE lines, later ones winning', () => {
    expect(parseNotifyMessage('READY=1\nSTATUS=Startup finished in 1s.\nSTATUS=again\n')).toEqual({
      READY: '1',
      STATUS: 'again',
    });
  });
  it('keeps = inside values and ignores junk lines', () => {
    expect(parseNotifyMessage(Buffer.from('X_A=b=c\nnoequals\n=empty\nlower=1\n'))).toEqual({ X_A: 'b=c' });
  });
  it('gives {} for an empty message', () => {
    expect(parseNotifyMessage('')).toEqual({});
  });
});
