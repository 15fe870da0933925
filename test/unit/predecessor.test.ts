import { predecessorAction } from '../../lib/domain/predecessor';

describe('predecessorAction (never force-detach from a running master)', () => {
  it.each([
    ['terminated', 'none', 'force-detach'],
    ['stopped', 'InService', 'force-detach'],
    ['gone', 'none', 'force-detach'],
    ['shutting-down', 'Terminating', 'wait-for-release'],
    ['stopping', 'InService', 'wait-for-release'],
    ['running', 'Terminating:Wait', 'wait-for-release'],
    // Retained after an abandoned termination: it stays until terminated by hand, never releases the volume.
    ['running', 'Terminating:Retained', 'refuse'],
    ['stopped', 'Terminating:Retained', 'force-detach'],
    ['running', 'InService', 'refuse'],
    ['running', 'none', 'refuse'],
    ['pending', 'Pending:Wait', 'refuse'],
  ])('%s / %s → %s', (ec2, asg, expected) => expect(predecessorAction(ec2, asg)).toBe(expected));
});
