/**
 * How long AWS takes (issue 19): the delays the sandbox adds so a flow spends its time where it
 * would on AWS. The default profile keeps tests fast and models only what changes behaviour
 * (the device link's 0–5 s; everything else at once); `AWS_LATENCY` uses typical figures, fixed
 * rather than random so two benchmark runs compare. Sources, per figure:
 *
 * - SSM Run Command: SendCommand answers at once with the command `Pending`; the agent (which
 *   holds a channel to SSM's message gateway) picks it up in about a second. AWS documents no
 *   figure; ~1 s delivery is the commonly reported one. Polling GetCommandInvocation is the only
 *   way to learn the result (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html).
 * - AttachVolume: the attachment is `attaching` before `attached` (a few seconds typically;
 *   https://docs.aws.amazon.com/ebs/latest/userguide/ebs-attaching-volume.html), then udev makes
 *   the NVMe by-id link (https://docs.aws.amazon.com/ebs/latest/userguide/nvme-ebs-volumes.html).
 * - A launched instance: the launch hook's event comes at `Pending:Wait`, before the OS has
 *   booted; the SSM agent reports Online once the instance has booted and the agent registered
 *   (commonly 30–60 s for Amazon Linux / Ubuntu AMIs; 35 s here).
 * - NLB target registration: a new target is `initial` (`Elb.RegistrationInProgress`, "it can
 *   take a few minutes for the registration process to complete and health checks to start"),
 *   then `initial` (`Elb.InitialHealthChecking`) until it passed HealthyThresholdCount checks
 *   HealthCheckIntervalSeconds apart (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/target-group-health-checks.html,
 *   https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetHealth.html).
 *   30 s of registration here (reported figures range from ~30 s to several minutes); the checks
 *   follow the target group's own settings.
 * - An asynchronous Lambda invocation: Invoke answers 202 once the event is queued; Lambda
 *   documents no delay before a function instance takes it (typically well under a second;
 *   500 ms here; https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html).
 */
export interface LatencyProfile {
  readonly name: string;
  /** SendCommand → the agent starts the command. */
  commandStartMs: number;
  /** SendCommand answers once the command ended or this much passed (AWS: at once, 0). */
  sendCommandLingerMs: number;
  /** An attachment stays `attaching` this long. */
  attachMs: number;
  /** After `attached`, the by-id link appears (udev). */
  deviceMs: (volumeId: string) => number;
  /** A newly booted instance's SSM agent reports Online after this long (hosts booted by the harness before the profile is set: at once). */
  agentOnlineMs: number;
  /** A registered target is `initial` (RegistrationInProgress) this long ... */
  registrationMs: number;
  /** ... then `initial` (InitialHealthChecking) for interval × healthy threshold × this factor (0: healthy at once). */
  healthCheckScale: number;
  /** An asynchronous Invoke's 202 → the handler starts (Lambda's internal queue). */
  asyncInvokeMs: number;
}

/** Tests: fast, with what changes behaviour kept (the device link). */
export const SANDBOX_LATENCY: LatencyProfile = {
  name: 'sandbox', commandStartMs: 0, sendCommandLingerMs: 3000, attachMs: 0, deviceMs: () => Math.random() * 5000,
  agentOnlineMs: 0, registrationMs: 0, healthCheckScale: 0, asyncInvokeMs: 0,
};

/** Typical AWS figures (see the header for their sources). */
export const AWS_LATENCY: LatencyProfile = {
  name: 'aws', commandStartMs: 1000, sendCommandLingerMs: 0, attachMs: 3000, deviceMs: () => 1000,
  agentOnlineMs: 35_000, registrationMs: 30_000, healthCheckScale: 1, asyncInvokeMs: 500,
};
