/**
 * msw handlers for the Cloud Map data API as the AWS SDK calls it (AWS JSON 1.1,
 * `X-Amz-Target: Route53AutoNaming_v20170314.<Operation>` on
 * `https://data-servicediscovery.<region>.amazonaws.com/`). Every call is recorded; the
 * test decides each answer.
 *
 * Usage:
 *   const cloudMap = mockCloudMap('us-east-1', (call) =>
 *     call.operation === 'DiscoverInstances' ? discoverResponse([...], 7) : { InstancesRevision: 7 });
 *   const server = setupServer(cloudMap.handler);
 *   cloudMap.count('DiscoverInstancesRevision');
 */
import { http, HttpResponse, type HttpHandler } from 'msw';

export const TEST_REGION = 'us-east-1';
export const TEST_CREDENTIALS = { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } as const;

export type CloudMapOperation = 'DiscoverInstances' | 'DiscoverInstancesRevision';

export interface CloudMapCall {
  operation: CloudMapOperation;
  body: Record<string, unknown>;
  headers: Headers;
}

/** A JSON body (status 200) or a full Response (errors: see {@link awsError}). */
export type CloudMapAnswer = Response | Record<string, unknown>;

export interface CloudMapMock {
  readonly handler: HttpHandler;
  readonly calls: CloudMapCall[];
  count(operation: CloudMapOperation): number;
  /** Replaces the answering function. */
  answer(fn: (call: CloudMapCall) => CloudMapAnswer | Promise<CloudMapAnswer>): void;
}

const TARGET_PREFIX = 'Route53AutoNaming_v20170314.';

export function dataEndpoint(region = TEST_REGION): string {
  return `https://data-servicediscovery.${region}.amazonaws.com/`;
}

export function mockCloudMap(
  region: string,
  answer: (call: CloudMapCall) => CloudMapAnswer | Promise<CloudMapAnswer>,
): CloudMapMock {
  const calls: CloudMapCall[] = [];
  let respond = answer;
  const handler = http.post(dataEndpoint(region), async ({ request }) => {
    const target = request.headers.get('x-amz-target') ?? '';
    if (!target.startsWith(TARGET_PREFIX)) return awsError('UnknownOperationException', 400);
    const operation = target.slice(TARGET_PREFIX.length) as CloudMapOperation;
    const body = (await request.json()) as Record<string, unknown>;
    const call = { operation, body, headers: request.headers };
    calls.push(call);
    const result = await respond(call);
    if (result instanceof Response) return result;
    return HttpResponse.json(result, { headers: { 'content-type': 'application/x-amz-json-1.1' } });
  });
  return {
    handler,
    calls,
    count: (operation) => calls.filter((call) => call.operation === operation).length,
    answer(fn) {
      respond = fn;
    },
  };
}

/** An AWS JSON 1.1 error response (`__type` names the error). */
export function awsError(type: string, status = 400, message = type): Response {
  return HttpResponse.json(
    { __type: type, Message: message },
    { status, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'test-request-id' } },
  );
}

export interface SummaryInput {
  id: string;
  attributes: Record<string, string>;
  healthStatus?: 'HEALTHY' | 'UNHEALTHY' | 'UNKNOWN';
}

/** A DiscoverInstances answer. */
export function discoverResponse(
  instances: readonly SummaryInput[],
  revision: number | undefined,
  namespace = 'myapp.local',
  service = 'orders',
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    Instances: instances.map((instance) => ({
      InstanceId: instance.id,
      NamespaceName: namespace,
      ServiceName: service,
      HealthStatus: instance.healthStatus ?? 'HEALTHY',
      Attributes: instance.attributes,
    })),
  };
  if (revision !== undefined) body.InstancesRevision = revision;
  return body;
}
