/**
 * A batch the table rejects becomes exit 69; the server's own message is
 * shown with the batch's values blanked, a message raised by a function never.
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

const AFTER = 'the batch was rolled back, nothing of it was written — fix the cause (a constraint or trigger on the table?) and run rotate again: it resumes from the last checkpoint';

describe('asBatchRejected', () => {
  it("turns the server's own data or constraint error into a DatabaseError (exit 69), values blanked, constraint named", () => {
    const tooLong = asBatchRejected(serverError('22001', 'value too long for FERNET_V1:abcdefgh'), target, ['FERNET_V1:abcdefgh']);
    expect(tooLong).toMatchObject({ code: 'DATABASE' });
    expect((tooLong as Error).message).toBe(
      `the database rejected a batch of public.people: value too long for [a value] (SQLSTATE 22001); ${AFTER}`,
    );
    const check = Object.assign(serverError('23514', 'new row for relation "people" violates check constraint "email_shape"'), {
      constraint: 'email_shape',
    });
    expect((asBatchRejected(check, target, []) as Error).message).toBe(
      `the database rejected a batch of public.people: new row for relation "people" violates check constraint "email_shape" (constraint email_shape) (SQLSTATE 23514); ${AFTER}`,
    );
  });

  it('never shows a message a PL/pgSQL function raised, even with only a part of a value in it; names the function', () => {
    const value = 'FERNET_V1:Z0FBQUFBQm9sZGVmZ2hpamtsbW5vcA==';
    const part = value.slice(10, 30);
    const raised = Object.assign(serverError('P0001', `rejects ${part}`), {
      where: 'PL/pgSQL function public.refuse_row() line 3 at RAISE',
    });
    const message = (asBatchRejected(raised, target, [value]) as Error).message;
    // Booleans, so a failure cannot print the value either.
    expect(message.includes(part), 'the part of the value is shown').toBe(false);
    expect(message.includes('rejects'), "the trigger's message is shown").toBe(false);
    expect(message).toBe(
      'the database rejected a batch of public.people: an error raised by PL/pgSQL function public.refuse_row() — ' +
        "its message is not shown because a trigger may build it from row values; read it in the server log, and see the table's triggers " +
        `with \\d public.people in psql (SQLSTATE P0001); ${AFTER}`,
    );
  });

  it('hides the message of any class raised inside a function (a trigger can RAISE with ERRCODE 23514), keeping the constraint name', () => {
    const raised = Object.assign(serverError('23514', 'bad email user42@example.com'), {
      where: 'PL/pgSQL function check_email() line 2 at RAISE',
      constraint: 'email_shape',
    });
    const message = (asBatchRejected(raised, target, []) as Error).message;
    expect(message.includes('user42'), "the trigger's message is shown").toBe(false);
    expect(message).toContain('an error raised by PL/pgSQL function check_email() (constraint email_shape)');
    const bare = (asBatchRejected(serverError('P0001', 'bad email user42@example.com'), target, []) as Error).message;
    expect(bare.includes('user42'), "the trigger's message is shown").toBe(false);
    expect(bare).toContain('an error raised by a function');
  });

  it('leaves other errors as they are (a syntax error is a bug of ours; a socket error has no SQLSTATE)', () => {
    const syntax = serverError('42601', 'syntax error');
    expect(asBatchRejected(syntax, target, [])).toBe(syntax);
    const socket = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(asBatchRejected(socket, target, [])).toBe(socket);
  });
});
