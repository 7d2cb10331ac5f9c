// Proves the generated TypeScript is usable: a service implemented with
// createRouterTransport and called through createClient, unary and streaming,
// with errors arriving as ConnectError codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  OrderProcessingService,
  OrderStatus,
  ProductSchema,
} from "../src/tokenrelay/orderprocessing/v1/orderprocessing_pb.js";
import { MoneySchema } from "../src/tokenrelay/type/v1/money_pb.js";

const product = create(ProductSchema, {
  sku: "TEA-GREEN-100G",
  name: "Green tea",
  unitPrice: create(MoneySchema, { amountMinor: 1250n, currency: "EUR" }),
});

const transport = createRouterTransport(({ service }) => {
  service(OrderProcessingService, {
    listProducts: () => ({ products: [product] }),
    async *watchOrder(req) {
      if (req.orderId === "") {
        throw new ConnectError("order_id is required", Code.InvalidArgument);
      }
      for (const [i, status] of [OrderStatus.PENDING, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED].entries()) {
        yield { order: { id: req.orderId, status, version: BigInt(i + 1) } };
      }
    },
  });
});

const client = createClient(OrderProcessingService, transport);

test("unary call returns the generated message", async () => {
  const res = await client.listProducts({});
  assert.equal(res.products.length, 1);
  assert.equal(res.products[0].sku, "TEA-GREEN-100G");
  assert.equal(res.products[0].unitPrice?.amountMinor, 1250n);
  assert.equal(res.products[0].unitPrice?.currency, "EUR");
});

test("server stream delivers every state in order", async () => {
  const statuses: OrderStatus[] = [];
  for await (const res of client.watchOrder({ orderId: "ord_1" })) {
    statuses.push(res.order!.status);
  }
  assert.deepEqual(statuses, [OrderStatus.PENDING, OrderStatus.IN_PROGRESS, OrderStatus.COMPLETED]);
});

test("errors arrive as ConnectError codes", async () => {
  await assert.rejects(
    async () => {
      for await (const _ of client.watchOrder({ orderId: "" })) {
        assert.fail("no message expected");
      }
    },
    (err: unknown) => err instanceof ConnectError && err.code === Code.InvalidArgument,
  );
  await assert.rejects(client.getOrder({ orderId: "ord_1" }), (err: unknown) => ConnectError.from(err).code === Code.Unimplemented);
});
