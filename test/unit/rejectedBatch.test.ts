/**
 * A batch the table rejects becomes exit 69 with the server's message, and
 * no value of the batch survives in that message.
 */
import { describe, expect, it } from 'vitest';
import { asBatchRejected, redactValues } from '../../src/rotation/rejectedBatch.js';
import type { ResolvedTarget } from '../../src/schema/resolveTarget.js';

const target = { name: 'public.people' } as ResolvedTarget;
const serverError = (code: string, message: string) => Object.assign(new Error(message), { code, severity: 'ERROR' });

describe('redactValues', () => {
  it('blanks every occurrence of every value, a longer value before one it contains', () => {
    const old = 'FERNET_V1:Z0FBQUFBQm9sZA==';
    const longer = `${old}extra`;
    expect(redactValues(`was ${longer}, now ${old}; again ${old}`, [old, null, longer])).toBe('was [a value], now [a value]; again [a value]');
  });

  it('leaves values under six characters (they could be words of the message)', () => {
    expect(redactValues('row is frozen', ['row', 'frozen'])).toBe('row is [a value]');
  });
});

describe('asBatchRejected', () => {
  it('turns a data, constraint or PL/pgSQL error into a DatabaseError (exit 69) without the values', () => {
    for (const code of ['22001', '23514', 'P0001']) {
      const err = asBatchRejected(serverError(code, 'refused FERNET_V1:abcdefgh'), target, ['FERNET_V1:abcdefgh']);
      expect(err).toMatchObject({ code: 'DATABASE' });
      expect((err as Error).message).toBe(
        `the database rejected a batch of public.people: refused [a value] (SQLSTATE ${code}); the batch was rolled back, ` +
          'nothing of it was written — fix the cause (a constraint or trigger on the table?) and run rotate again: it resumes from the last checkpoint',
      );
    }
  });

  it('leaves other errors as they are (a syntax error is a bug of ours; a socket error has no SQLSTATE)', () => {
    const syntax = serverError('42601', 'syntax error');
    expect(asBatchRejected(syntax, target, [])).toBe(syntax);
    const socket = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(asBatchRejected(socket, target, [])).toBe(socket);
  });
});
