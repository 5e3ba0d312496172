"""The Admin GraphQL schema subset the sandbox serves (types, fields, arguments), bound to the resolvers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botctl.sandbox import graphql as gql

from .resolvers import (
    CUSTOMER_SORTS,
    SORTS,
    r_customer,
    r_customer_orders,
    r_customers,
    r_fulfillments,
    r_last_order,
    r_line_items,
    r_node,
    r_nodes,
    r_order,
    r_order_customer,
    r_orders,
    r_shop,
    r_tracking,
)

if TYPE_CHECKING:
    pass


def _page_args(sort_enum: str | None = None) -> dict[str, gql.Arg]:
    args = {
        "first": gql.Arg("Int"),
        "after": gql.Arg("String"),
        "last": gql.Arg("Int"),
        "before": gql.Arg("String"),
        "reverse": gql.Arg("Boolean", False),
    }
    if sort_enum:
        args.update(query=gql.Arg("String"), sortKey=gql.Arg(sort_enum))
    return args


def _scalars(**fields: str) -> dict[str, gql.FieldDef]:
    return {name: gql.FieldDef(t) for name, t in fields.items()}


def _connection_types(name: str) -> dict[str, gql.ObjectType]:
    return {
        f"{name}Connection": gql.ObjectType(
            f"{name}Connection",
            {
                "edges": gql.FieldDef(f"[{name}Edge!]!"),
                "nodes": gql.FieldDef(f"[{name}!]!"),
                "pageInfo": gql.FieldDef("PageInfo!"),
            },
        ),
        f"{name}Edge": gql.ObjectType(
            f"{name}Edge", {"cursor": gql.FieldDef("String!"), "node": gql.FieldDef(f"{name}!")}
        ),
    }


def build_schema() -> gql.Schema:
    F = gql.FieldDef  # noqa: N806
    types: dict[str, gql.ObjectType] = {
        "QueryRoot": gql.ObjectType(
            "QueryRoot",
            {
                "shop": F("Shop!", resolve=r_shop),
                "orders": F("OrderConnection!", _page_args("OrderSortKeys"), r_orders),
                "order": F("Order", {"id": gql.Arg("ID!")}, r_order),
                "customers": F("CustomerConnection!", _page_args("CustomerSortKeys"), r_customers),
                "customer": F("Customer", {"id": gql.Arg("ID!")}, r_customer),
                "node": F("Node", {"id": gql.Arg("ID!")}, r_node),
                "nodes": F("[Node]!", {"ids": gql.Arg("[ID!]!")}, r_nodes),
            },
        ),
        "Shop": gql.ObjectType(
            "Shop",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    email="String!",
                    contactEmail="String!",
                    myshopifyDomain="String!",
                    url="URL!",
                    currencyCode="CurrencyCode!",
                    ianaTimezone="String!",
                    timezoneAbbreviation="String!",
                    description="String",
                    createdAt="DateTime!",
                ),
                "primaryDomain": F("Domain!"),
                "plan": F("ShopPlan!"),
            },
            ("Node",),
        ),
        "Domain": gql.ObjectType(
            "Domain", _scalars(id="ID!", host="String!", url="URL!", sslEnabled="Boolean!")
        ),
        "ShopPlan": gql.ObjectType(
            "ShopPlan",
            _scalars(
                displayName="String!",
                partnerDevelopment="Boolean!",
                shopifyPlus="Boolean!",
                publicDisplayName="String!",
            ),
        ),
        "Order": gql.ObjectType(
            "Order",
            {
                **_scalars(
                    id="ID!",
                    legacyResourceId="UnsignedInt64!",
                    name="String!",
                    email="String",
                    phone="String",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    processedAt="DateTime!",
                    cancelledAt="DateTime",
                    cancelReason="OrderCancelReason",
                    closed="Boolean!",
                    closedAt="DateTime",
                    confirmed="Boolean!",
                    test="Boolean!",
                    note="String",
                    tags="[String!]!",
                    displayFinancialStatus="OrderDisplayFinancialStatus",
                    displayFulfillmentStatus="OrderDisplayFulfillmentStatus!",
                    currencyCode="CurrencyCode!",
                    presentmentCurrencyCode="CurrencyCode!",
                    customerLocale="String",
                    statusPageUrl="URL!",
                    returnStatus="OrderReturnStatus!",
                ),
                "totalPriceSet": F("MoneyBag!"),
                "currentTotalPriceSet": F("MoneyBag!"),
                "subtotalPriceSet": F("MoneyBag"),
                "totalShippingPriceSet": F("MoneyBag!"),
                "totalTaxSet": F("MoneyBag"),
                "totalRefundedSet": F("MoneyBag!"),
                "shippingAddress": F("MailingAddress"),
                "billingAddress": F("MailingAddress"),
                "customer": F("Customer", resolve=r_order_customer),
                "lineItems": F("LineItemConnection!", _page_args(), r_line_items),
                "fulfillments": F("[Fulfillment!]!", {"first": gql.Arg("Int")}, r_fulfillments),
            },
            ("Node",),
        ),
        "Customer": gql.ObjectType(
            "Customer",
            {
                **_scalars(
                    id="ID!",
                    legacyResourceId="UnsignedInt64!",
                    email="String",
                    firstName="String",
                    lastName="String",
                    displayName="String!",
                    phone="String",
                    numberOfOrders="UnsignedInt64!",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    state="CustomerState!",
                    tags="[String!]!",
                    note="String",
                    verifiedEmail="Boolean!",
                ),
                "amountSpent": F("MoneyV2!"),
                "defaultEmailAddress": F("CustomerEmailAddress"),
                "defaultAddress": F("MailingAddress"),
                "orders": F("OrderConnection!", _page_args("OrderSortKeys"), r_customer_orders),
                "lastOrder": F("Order", resolve=r_last_order),
            },
            ("Node",),
        ),
        "CustomerEmailAddress": gql.ObjectType(
            "CustomerEmailAddress", _scalars(emailAddress="String!", marketingState="String!")
        ),
        "MoneyBag": gql.ObjectType(
            "MoneyBag", {"shopMoney": F("MoneyV2!"), "presentmentMoney": F("MoneyV2!")}
        ),
        "MoneyV2": gql.ObjectType("MoneyV2", _scalars(amount="Decimal!", currencyCode="CurrencyCode!")),
        "MailingAddress": gql.ObjectType(
            "MailingAddress",
            _scalars(
                name="String",
                firstName="String",
                lastName="String",
                address1="String",
                address2="String",
                city="String",
                province="String",
                provinceCode="String",
                zip="String",
                country="String",
                countryCodeV2="CountryCode",
                phone="String",
                company="String",
                formatted="[String!]!",
            ),
        ),
        "LineItem": gql.ObjectType(
            "LineItem",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    title="String!",
                    quantity="Int!",
                    currentQuantity="Int!",
                    sku="String",
                    variantTitle="String",
                    vendor="String",
                ),
                "originalUnitPriceSet": F("MoneyBag!"),
                "discountedUnitPriceSet": F("MoneyBag!"),
                "originalTotalSet": F("MoneyBag!"),
            },
        ),
        "Fulfillment": gql.ObjectType(
            "Fulfillment",
            {
                **_scalars(
                    id="ID!",
                    name="String!",
                    status="FulfillmentStatus!",
                    displayStatus="FulfillmentDisplayStatus",
                    createdAt="DateTime!",
                    updatedAt="DateTime!",
                    inTransitAt="DateTime",
                    deliveredAt="DateTime",
                    estimatedDeliveryAt="DateTime",
                ),
                "trackingInfo": F("[FulfillmentTrackingInfo!]!", {"first": gql.Arg("Int")}, r_tracking),
            },
        ),
        "FulfillmentTrackingInfo": gql.ObjectType(
            "FulfillmentTrackingInfo", _scalars(company="String", number="String", url="URL")
        ),
        "PageInfo": gql.ObjectType(
            "PageInfo",
            _scalars(
                hasNextPage="Boolean!", hasPreviousPage="Boolean!", startCursor="String", endCursor="String"
            ),
        ),
        **_connection_types("Order"),
        **_connection_types("Customer"),
        **_connection_types("LineItem"),
    }
    enums = {
        "OrderSortKeys": frozenset(SORTS),
        "CustomerSortKeys": frozenset(CUSTOMER_SORTS),
    }
    return gql.Schema(
        query="QueryRoot", types=types, enums=enums, interfaces={"Node": {"id": gql.FieldDef("ID!")}}
    )


SCHEMA = build_schema()
