package runtime

// The fields the sidecar implements, per message type: docs/xds.md, as data. Any other
// populated field makes the resource invalid. A few fields beyond the contract are
// accepted because they do not change behaviour: resource_api_version in config sources,
// locality of an endpoint group, route names.

var configSourceFields = fields("ads", "resource_api_version")

var listenerFields = fields(
	"name",
	"address.socket_address.address",
	"address.socket_address.port_value",
	"traffic_direction",
	// Transparent proxying (docs/xds.md, "Transparent proxying").
	"use_original_dst",
	"bind_to_port",
	// The DNS table on the capture listener (docs/xds.md "DNS table").
	"metadata.filter_metadata.fields.list_value.values.string_value",
	"listener_filters.name",
	"listener_filters.typed_config",
	"filter_chains.name",
	"filter_chains.filter_chain_match.transport_protocol",
	"filter_chains.filter_chain_match.application_protocols",
	"filter_chains.transport_socket.name",
	"filter_chains.transport_socket.typed_config",
	"filter_chains.filters.name",
	"filter_chains.filters.typed_config",
)

// stringMatcherFields are envoy.type.matcher.v3.StringMatcher's.
var stringMatcherFields = fields("exact", "prefix", "suffix", "contains", "safe_regex.regex", "ignore_case")

// fractionFields are envoy.type.v3.FractionalPercent's.
var fractionFields = fields("numerator", "denominator")

// headerValueOptionFields are envoy.config.core.v3.HeaderValueOption's.
var headerValueOptionFields = fields("header.key", "header.value", "append_action")

var headerMutationFields = merge(
	headerValueOptionFields.withPrefix("request_headers_to_add"),
	headerValueOptionFields.withPrefix("response_headers_to_add"),
	fields("request_headers_to_remove", "response_headers_to_remove"),
)

var routeMatchFields = merge(
	fields(
		"prefix",
		"path",
		"safe_regex.regex",
		"case_sensitive",
		"headers.name",
		"headers.present_match",
		"headers.invert_match",
		"query_parameters.name",
		"query_parameters.present_match",
	),
	stringMatcherFields.withPrefix("headers.string_match"),
	stringMatcherFields.withPrefix("query_parameters.string_match"),
)

var routeActionFields = merge(
	fields(
		"cluster",
		"weighted_clusters.clusters.name",
		"weighted_clusters.clusters.weight",
		"timeout",
		"retry_policy.retry_on",
		"retry_policy.num_retries",
		"retry_policy.per_try_timeout",
		"retry_policy.retriable_status_codes",
		"retry_policy.retry_back_off.base_interval",
		"retry_policy.retry_back_off.max_interval",
		"request_mirror_policies.cluster",
		"prefix_rewrite",
		"regex_rewrite.pattern.regex",
		"regex_rewrite.substitution",
		"host_rewrite_literal",
		"hash_policy.header.header_name",
		"hash_policy.cookie.name",
		"hash_policy.cookie.ttl",
		"hash_policy.cookie.path",
		"hash_policy.connection_properties.source_ip",
		"hash_policy.query_parameter.name",
	),
	fractionFields.withPrefix("request_mirror_policies.runtime_fraction.default_value"),
	headerMutationFields.withPrefix("weighted_clusters.clusters"),
)

var routeFields = merge(
	fields(
		"name",
		"redirect.scheme_redirect",
		"redirect.host_redirect",
		"redirect.port_redirect",
		"redirect.path_redirect",
		"redirect.prefix_rewrite",
		"redirect.response_code",
		"direct_response.status",
		"direct_response.body.inline_string",
		"typed_per_filter_config",
	),
	routeMatchFields.withPrefix("match"),
	routeActionFields.withPrefix("route"),
	headerMutationFields,
)

var routeConfigFields = merge(
	fields(
		"name",
		"virtual_hosts.name",
		"virtual_hosts.domains",
	),
	routeFields.withPrefix("virtual_hosts.routes"),
)

// faultFields are those of envoy.extensions.filters.http.fault.v3.HTTPFault in a
// route's typed_per_filter_config; the filter's own config must be empty.
var faultFields = merge(
	fields("delay.fixed_delay", "abort.http_status", "abort.grpc_status"),
	fractionFields.withPrefix("delay.percentage"),
	fractionFields.withPrefix("abort.percentage"),
)

// corsPolicyFields are those of envoy.extensions.filters.http.cors.v3.CorsPolicy in a
// route's typed_per_filter_config.
var corsPolicyFields = merge(
	fields("allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials"),
	stringMatcherFields.withPrefix("allow_origin_string_match"),
)

var hcmFields = merge(
	fields(
		"stat_prefix",
		"codec_type",
		"rds.route_config_name",
		"http_filters.name",
		"http_filters.typed_config",
		"forward_client_cert_details",
		"set_current_client_cert_details.uri",
		// Path normalization (parse_authz.go).
		"normalize_path",
		"merge_slashes",
		"path_with_escaped_slashes_action",
	),
	configSourceFields.withPrefix("rds.config_source"),
	routeConfigFields.withPrefix("route_config"),
)

var routerFields = fields()

var tcpProxyFields = fields(
	"stat_prefix",
	"cluster",
	"weighted_clusters.clusters.name",
	"weighted_clusters.clusters.weight",
	"idle_timeout",
)

var loadAssignmentFields = fields(
	"cluster_name",
	"endpoints.locality.region",
	"endpoints.locality.zone",
	"endpoints.locality.sub_zone",
	"endpoints.lb_endpoints.endpoint.address.socket_address.address",
	"endpoints.lb_endpoints.endpoint.address.socket_address.port_value",
	// Workload metadata for telemetry (endpointPeers): only string values under the
	// key "trellis", checked by parseLoadAssignment.
	"endpoints.lb_endpoints.metadata.filter_metadata.fields.string_value",
)

var clusterFields = merge(
	fields(
		"name",
		"type",
		"connect_timeout",
		"lb_policy",
		"eds_cluster_config.service_name",
		"typed_extension_protocol_options",
		"dns_refresh_rate",
		"least_request_lb_config.choice_count",
		"ring_hash_lb_config.minimum_ring_size",
		"circuit_breakers.thresholds.max_connections",
		"circuit_breakers.thresholds.max_pending_requests",
		"circuit_breakers.thresholds.max_requests",
		"circuit_breakers.thresholds.max_retries",
		"circuit_breakers.thresholds.retry_budget.budget_percent.value",
		"circuit_breakers.thresholds.retry_budget.min_retry_concurrency",
		"outlier_detection.consecutive_5xx",
		"outlier_detection.consecutive_gateway_failure",
		"outlier_detection.enforcing_consecutive_5xx",
		"outlier_detection.enforcing_consecutive_gateway_failure",
		"outlier_detection.interval",
		"outlier_detection.base_ejection_time",
		"outlier_detection.max_ejection_percent",
		"common_lb_config.healthy_panic_threshold.value",
		"transport_socket.name",
		"transport_socket.typed_config",
	),
	configSourceFields.withPrefix("eds_cluster_config.eds_config"),
	loadAssignmentFields.withPrefix("load_assignment"),
)

var httpProtocolOptionsFields = fields(
	"explicit_http_config.http_protocol_options",
	"explicit_http_config.http2_protocol_options",
	"common_http_protocol_options.idle_timeout",
	"common_http_protocol_options.max_requests_per_connection",
)

// Rate limiting (ratelimit.go).

// rateLimitActionFields are those of envoy.config.route.v3.RateLimit.Action.
var rateLimitActionFields = merge(
	fields(
		"generic_key.descriptor_key",
		"generic_key.descriptor_value",
		"header_value_match.descriptor_key",
		"header_value_match.descriptor_value",
		"header_value_match.expect_match",
		"header_value_match.headers.name",
		"header_value_match.headers.present_match",
		"header_value_match.headers.invert_match",
		"request_headers.header_name",
		"request_headers.descriptor_key",
		"request_headers.skip_if_absent",
		"metadata.descriptor_key",
		"metadata.metadata_key.key",
		"metadata.metadata_key.path.key",
		"metadata.default_value",
		"metadata.source",
		"metadata.skip_if_absent",
	),
	stringMatcherFields.withPrefix("header_value_match.headers.string_match"),
)

// tokenBucketFields are envoy.type.v3.TokenBucket's.
var tokenBucketFields = fields("max_tokens", "tokens_per_fill", "fill_interval")

// localRateLimitFields are those of a route's
// envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit; the filter's own
// config may only set stat_prefix.
var localRateLimitFields = merge(
	fields(
		"stat_prefix",
		"filter_enabled.runtime_key",
		"filter_enforced.runtime_key",
		"descriptors.entries.key",
		"descriptors.entries.value",
		"descriptors.shadow_mode",
		"enable_x_ratelimit_headers",
		"enable_retry_after_header",
		"max_dynamic_descriptors",
		"rate_limits",
	),
	tokenBucketFields.withPrefix("token_bucket"),
	tokenBucketFields.withPrefix("descriptors.token_bucket"),
	fractionFields.withPrefix("filter_enabled.default_value"),
	fractionFields.withPrefix("filter_enforced.default_value"),
	rateLimitActionFields.withPrefix("rate_limits.actions"),
)

// rateLimitPerRouteFields are those of a route's
// envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute.
var rateLimitPerRouteFields = merge(fields("rate_limits"), rateLimitActionFields.withPrefix("rate_limits.actions"))

// rateLimitFilterFields are those of the HCM's
// envoy.extensions.filters.http.ratelimit.v3.RateLimit.
var rateLimitFilterFields = fields(
	"domain",
	"stat_prefix",
	"timeout",
	"failure_mode_deny",
	"rate_limit_service.grpc_service.envoy_grpc.cluster_name",
	"rate_limit_service.transport_api_version",
)
