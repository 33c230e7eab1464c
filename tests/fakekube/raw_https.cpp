#include "tests/fakekube/raw_https.h"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace kcache::fakekube {

RawResponse rawRequest(const FakeKubeServer& server, const std::string& method,
                       const std::string& target, const std::string& contentType,
                       const std::string& body) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  namespace ssl = net::ssl;

  net::io_context io;
  ssl::context tls(ssl::context::tls_client);
  tls.add_certificate_authority(net::buffer(server.serverCa().certificate));
  tls.set_verify_mode(ssl::verify_peer);
  ssl::stream<net::ip::tcp::socket> stream(io, tls);
  const std::string url = server.url();  // https://127.0.0.1:<port>
  const auto port = static_cast<unsigned short>(std::stoi(url.substr(url.rfind(':') + 1)));
  stream.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
  stream.handshake(ssl::stream_base::client);

  http::request<http::string_body> request{http::string_to_verb(method), target, 11};
  request.set(http::field::host, "127.0.0.1");
  if (!contentType.empty()) request.set(http::field::content_type, contentType);
  request.body() = body;
  request.prepare_payload();
  http::write(stream, request);

  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  beast::error_code ignored;
  stream.shutdown(ignored);
  return {static_cast<int>(response.result_int()), std::string(response[http::field::content_type]),
          nlohmann::json::parse(response.body(), nullptr, false)};
}

}  // namespace kcache::fakekube
