import { describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { ApiError } from '../api.ts';
import { appFieldRules, grantItems } from '../pages/apps.tsx';
import { deadlineOf } from '../pages/privacy.tsx';
import { inputErrors, problemErrors } from './form-errors.tsx';

const refused = (detail: string, code = 'validation_failed') =>
  new ApiError({ status: code === 'conflict' ? 409 : 400, code, detail });

describe('errors by field', () => {
  it("checks a form against its operation's body schema: each error under its field, list items by index", () => {
    expect(
      inputErrors(api.apps.create.body, { name: 'dashboard', grants: ['subscribe a/#'] }),
    ).toBeUndefined();
    const errors = inputErrors(api.apps.create.body, { name: 'Bad Name', grants: ['ok', 'x'.repeat(600)] });
    expect(Object.keys(errors ?? {}).sort()).toEqual(['grants.1', 'name']);
    expect(errors?.name).toMatch(/^app name must be 1-48 characters/);
    // A transform's refusal (a duration) is the field's too.
    expect(inputErrors(api.apps.createToken.body, { ttl: 'forever' })?.ttl).toMatch(/is not a duration/);
    expect(inputErrors(api.privacy.createRequest.body, { subject: 'u 17', kind: 'erasure' })).toEqual({
      subject: expect.stringMatching(/^a subject id/) as unknown,
    });
  });

  it("puts the server's refusal under the field it names, else under the form", () => {
    const purpose = 'purpose: unknown data use "analytics.reportng" (did you mean analytics.reporting?)';
    expect(problemErrors(refused(purpose), appFieldRules)).toEqual({ purpose });
    expect(problemErrors(refused('zone plant does not exist'), appFieldRules)).toEqual({
      zone: 'zone plant does not exist',
    });
    expect(problemErrors(refused('app dashboard already exists', 'conflict'), appFieldRules)).toEqual({
      name: 'app dashboard already exists',
    });
    // Not a field's: the form's.
    expect(problemErrors(refused('recent second factor required'), appFieldRules)).toEqual({
      '': 'recent second factor required',
    });
    // A field name inside a word is no match (`zoned` is not `zone`).
    expect(problemErrors(refused('zoned out'), appFieldRules)).toEqual({ '': 'zoned out' });
  });

  it('splits a refusal naming several grants into one error per grant', () => {
    const detail =
      'invalid grant: grant 1 ("subscribe devices/+/telemetry grup:pumps"): unknown scope "grup"; grant 3 ("sub x"): unknown action "sub"';
    expect(problemErrors(refused(detail), [], grantItems)).toEqual({
      'grants.0': 'grant 1 ("subscribe devices/+/telemetry grup:pumps"): unknown scope "grup"',
      'grants.2': 'grant 3 ("sub x"): unknown action "sub"',
    });
    const noPurpose =
      'grant 2 ("subscribe devices/#"): app ops has no declared purpose, and device data (topics under devices/) is granted only for a purpose';
    expect(problemErrors(refused(noPurpose), [], grantItems)).toEqual({ 'grants.1': noPurpose });
  });
});

describe('the deadline of a data-subject request', () => {
  const DAY = 86_400_000;
  const now = Date.UTC(2026, 11, 4, 12);
  const request = (over: Partial<Parameters<typeof deadlineOf>[0]>): Parameters<typeof deadlineOf>[0] => ({
    id: 'pr_1',
    subject: 'u-17',
    kind: 'erasure',
    status: 'open',
    receivedAt: now - DAY,
    dueAt: now + 29 * DAY,
    completedAt: null,
    overdueAt: null,
    result: null,
    note: null,
    createdBy: 'user:ada',
    ...over,
  });

  it('counts the days left while open, and how long it is overdue once past its due date', () => {
    expect(deadlineOf(request({}), now)).toEqual({ text: '29 days left', overdue: false });
    expect(deadlineOf(request({ dueAt: now + 1000 }), now)).toEqual({ text: '1 day left', overdue: false });
    expect(deadlineOf(request({ dueAt: now - 10 * DAY - 5000 }), now)).toEqual({
      text: 'overdue by 10 days',
      overdue: true,
    });
    expect(deadlineOf(request({ dueAt: now - 1000 }), now)).toEqual({
      text: 'overdue by 1 day',
      overdue: true,
    });
  });

  it('says when a closed request was closed, and whether late; a closed request is never overdue', () => {
    const onTime = deadlineOf(request({ status: 'completed', completedAt: now }), now + 90 * DAY);
    expect(onTime.overdue).toBe(false);
    expect(onTime.text).toMatch(/^completed Dec 4, 2026$/);
    const late = deadlineOf(
      request({ status: 'rejected', dueAt: now - 2 * DAY, completedAt: now, overdueAt: now - DAY }),
      now,
    );
    expect(late).toEqual({ text: 'rejected Dec 4, 2026, 2 days late', overdue: false });
  });
});
