import { Argument, Command, Option } from 'commander';
import { api, BulwarkError } from '@bulwark/protocol';
import { localOperator } from '../authz/index.ts';
import type { BulkOperationView, Principal } from '../operations/index.ts';
import {
  common,
  intOption,
  iso,
  printJson,
  printTable,
  withPlatform,
  type CommonOptions,
} from './context.ts';

const { bulkActions, bulkStatuses } = api.operations;
type BulkAction = (typeof bulkActions)[number];

/** The local operator (host access to the data directory) acts as `cli`, with the whole fleet in scope. */
const operator: Principal = { actor: localOperator.actor, scope: localOperator };

function row(op: BulkOperationView): Record<string, string> {
  return {
    id: op.id,
    action: op.action,
    devices: String(op.count),
    status: op.status,
    'requested by': op.requestedBy,
    requested: iso(op.requestedAt),
    'decided by': op.decidedBy ?? '',
    outcome:
      op.status === 'executed'
        ? `${op.summary.ok} ok, ${op.summary.skipped} skipped, ${op.summary.failed} failed`
        : '',
  };
}
const columns = ['id', 'action', 'devices', 'status', 'requested by', 'requested', 'decided by', 'outcome'];

/** One operation for a person: what it does, to which devices, where it stands, and each device's outcome. */
function describe(op: BulkOperationView): string {
  const lines = [
    `bulk operation ${op.id}: ${op.action} of ${op.count} device(s), ${op.status}`,
    `  requested by ${op.requestedBy} at ${iso(op.requestedAt)}${op.reason ? `: ${op.reason}` : ''}`,
    `  devices: ${op.deviceIds.join(', ')}`,
  ];
  if (op.status === 'pending')
    lines.push(
      `  waits for a second person (threshold ${op.threshold}) until ${iso(op.expiresAt)}: bulwark operations approve ${op.id}`,
    );
  if (op.decidedBy)
    lines.push(`  decided by ${op.decidedBy}${op.decisionNote ? `: ${op.decisionNote}` : ''}`);
  if (op.status === 'executed') {
    lines.push(`  ${op.summary.ok} ok, ${op.summary.skipped} skipped, ${op.summary.failed} failed`);
    for (const r of op.results.filter((x) => x.outcome !== 'ok'))
      lines.push(`    ${r.deviceId}: ${r.outcome}${r.message ? ` (${r.message})` : ''}`);
  }
  return lines.join('\n') + '\n';
}

const print = (options: CommonOptions, op: BulkOperationView) =>
  options.json ? printJson(op) : process.stdout.write(describe(op));

/**
 * `bulwark device bulk <action> (--ids a,b | --group G | --zone Z)`: one action over many devices. At or above the
 * baseline's approvals.bulkDevices it waits for a second person (`bulwark operations approve`, or the console).
 */
export function bulkCommand(): Command {
  return common(
    new Command('bulk')
      .description(
        "run one action over many devices; at or above the baseline's approvals.bulkDevices it waits for a second person",
      )
      .addArgument(new Argument('<action>', `what to do: ${bulkActions.join(', ')}`).choices(bulkActions)),
  )
    .option('--ids <ids>', 'these devices, comma-separated')
    .option('--group <group>', 'every device of this group (revoked and decommissioned ones left out)')
    .option('--zone <zone>', 'every device of this zone (revoked and decommissioned ones left out)')
    .option('--reason <text>', 'why (recorded with every device event)')
    .addOption(
      new Option('--revocation-reason <reason>', 'for revoke (RFC 5280)').choices(
        api.devices.revocationReasons,
      ),
    )
    .option('--stolen', 'for lost: reported stolen')
    .action(
      async (
        action: BulkAction,
        options: CommonOptions & {
          ids?: string;
          group?: string;
          zone?: string;
          reason?: string;
          revocationReason?: (typeof api.devices.revocationReasons)[number];
          stolen?: boolean;
        },
      ) => {
        const ids = options.ids
          ?.split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        if (ids?.length === 0)
          throw new BulwarkError('validation_failed', '--ids: give at least one device id');
        const op = await withPlatform(options, (p) =>
          p.operations.request(
            {
              action,
              ids,
              group: options.group,
              zone: options.zone,
              reason: options.reason,
              revocationReason: options.revocationReason,
              stolen: options.stolen,
            },
            operator,
          ),
        );
        print(options, op);
      },
    );
}

/** `bulwark operations list|show|approve|reject`: bulk device actions and their dual control. */
export function operationsCommands(): Command {
  const operations = new Command('operations').description(
    'bulk device actions: list, show, approve or reject those waiting for a second person',
  );

  common(operations.command('list').description('bulk device actions, newest first'))
    .addOption(new Option('--status <status>', 'only this status').choices(bulkStatuses))
    .option('--limit <n>', 'at most this many', intOption('--limit', 1, 500), 100)
    .action(async (options: CommonOptions & { status?: (typeof bulkStatuses)[number]; limit: number }) => {
      const list = await withPlatform(options, (p) =>
        p.operations.list({ status: options.status, limit: options.limit }, operator.scope),
      );
      if (options.json) printJson({ operations: list });
      else printTable(list.map(row), columns);
    });

  common(
    operations.command('show <id>').description('one bulk device action: devices, state, outcomes'),
  ).action(async (id: string, options: CommonOptions) => {
    print(options, await withPlatform(options, (p) => p.operations.get(id, operator.scope)));
  });

  for (const verb of ['approve', 'reject'] as const) {
    common(
      operations
        .command(`${verb} <id>`)
        .description(
          verb === 'approve'
            ? 'approve a pending bulk action as the second person (never your own): it runs now'
            : 'reject a pending bulk action (or cancel your own): nothing runs',
        ),
    )
      .option('--note <text>', 'recorded in the audit log')
      .action(async (id: string, options: CommonOptions & { note?: string }) => {
        const op = await withPlatform(options, (p) => p.operations[verb](id, operator, options.note));
        print(options, op);
      });
  }
  return operations;
}
