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
	"filter_chains.filters.name",
	"filter_chains.filters.typed_config",
)

var routeConfigFields = fields(
	"name",
	"virtual_hosts.name",
	"virtual_hosts.domains",
	"virtual_hosts.routes.name",
	"virtual_hosts.routes.match.prefix",
	"virtual_hosts.routes.route.cluster",
)

var hcmFields = merge(
	fields(
		"stat_prefix",
		"codec_type",
		"rds.route_config_name",
		"http_filters.name",
		"http_filters.typed_config",
	),
	configSourceFields.withPrefix("rds.config_source"),
	routeConfigFields.withPrefix("route_config"),
)

var routerFields = fields()

var tcpProxyFields = fields("stat_prefix", "cluster")

var loadAssignmentFields = fields(
	"cluster_name",
	"endpoints.locality.region",
	"endpoints.locality.zone",
	"endpoints.locality.sub_zone",
	"endpoints.lb_endpoints.endpoint.address.socket_address.address",
	"endpoints.lb_endpoints.endpoint.address.socket_address.port_value",
)

var clusterFields = merge(
	fields(
		"name",
		"type",
		"connect_timeout",
		"lb_policy",
		"eds_cluster_config.service_name",
		"typed_extension_protocol_options",
	),
	configSourceFields.withPrefix("eds_cluster_config.eds_config"),
	loadAssignmentFields.withPrefix("load_assignment"),
)

var httpProtocolOptionsFields = fields(
	"explicit_http_config.http_protocol_options",
	"explicit_http_config.http2_protocol_options",
)
