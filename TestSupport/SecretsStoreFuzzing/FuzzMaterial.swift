/// Fixed key material for the Key Vault seeds, made once with OpenSSL so every run mutates the same bytes: a
/// P-256 chain (root → intermediate → leaf, linked by key identifiers, for `web.contoso.example`), an RSA-2048
/// public key and P-256 / P-384 public points. None of it protects anything.
enum FuzzMaterial {
    /// A password-less PKCS#12 of the leaf key and the whole chain (3DES, SHA-1 MAC, as Key Vault exports),
    /// base64 as in a secret bundle's `value`.
    static let pkcs12Base64 = """
        MIIHGgIBAzCCBuAGCSqGSIb3DQEHAaCCBtEEggbNMIIGyTCCBb8GCSqGSIb3DQEHBqCCBbAwggWsAgEAMIIFpQYJKoZIhvcNAQcB\
        MBwGCiqGSIb3DQEMAQMwDgQIDbCDPY9+CVsCAggAgIIFeDxN46gqRSjpcxUiRJt9PvQ5OwL0XIUSC0j3ZlI7Hv1Q6aCr0blgcTiv\
        XF55grGA/KMbd5cMTlCmKJlqxdPP2xANURyq/AnLY6zV4979M8ApZlEn7Syw1qEnX7FjJh7cclFJc+esqi4CsXT0CF8dx5KHjS41\
        IYlFoxNxJ2BwVnBh0AxO7w12hDR8GojdUdC7SBp30q7KMxyS6ZJubqLKVF3lXt1XBQJsFLdlJkNdZiR2lmrGfi5Fgh2UVVSSgZT3\
        7lJBtFwSVD8OjaTyWTyg6XF5LhMJ7ybeX6DGVgEZI74TgJQkH9/p3wM9NH0AE5XzfBlRhp5CRS7XOpnL7igFehGwPdZpgZ5h6w+C\
        3gtijJlFdbqorFo/+aJPX8zmfkA0/ywcREU+nleDfU9PhpAHW8S/ryMBH11hA6ZNmkKIqiQtjYiD5pAhHXJQzYAtgMmnsVk8sfIT\
        rLW1xO2nAr9cZNDIRTQSdx1YWiRv6prnEVJ7a7q1rBVl4h4LzquXNmZ8sDcTmZwyYrhqr0neUjwkIaba5RUtZP58gkL23yKKTwjc\
        l8hxMZEcKo5yZguOklPTkFTZTWhdLxPZqd8LRgyfIg+mzTu+u0idKloTBvCw6Ej8MYlBUUL0PpcBCcv67REuA0D2rh9sY8UooQ2V\
        3HF7P+H4EunvOrMp598eWVHDkGtMWa5e0Qb9KQnTmW4HSTtaLQzm/+5VfRj42jSavh74fUnjbBMSH8hAWUmvBoaB7hmt3XT87ghi\
        mT6NT6pzxHJdh5qoPyu/IOAMl6G8qmxlUvrbGREFeqVb2WvbHAEXzueIUyGVnhk6ecuvxjpEO0pNNX6M9aiV3O/lvxQ+011obkFc\
        1L39kV1U7hzqYa6Xsi3k4SXs3Z3VPQF6TJ953qg0ganhTyqPHRUkVltVrarniMIe5aJ+saIu6CGZwnnHhjfpUjBGetWiZghtZbtC\
        etcLQSIRHoxxqpzZUNiRUyymr2NpkruIro3bpusKkb3h/Rv88ABTRNqxZERMvRNugFy/wkygp4+ILhxSBMZTR/yfe6B25tj5fCF0\
        SVYeG9m2548d0hyb7KuAOhC0EL0fNHXeAbYzeOk6NS68JlkLqJRqfXeILImwgH2fOoR7M24n/S750nhRwI++BaB4T5T6N5KkNBOv\
        KpZxbRqHGUuklOLoS+NeslEbkQbrAxgpEJd3FBbPhiObxsh4HIPJTHsd41BgdfLCEvfjGcXYvxlkW7aOc4igBanz17Xy3sECj1kd\
        hDD/ipuy8UpK/cHfFRRiA4QPos0m3Q2j54RsOcb0lAT8eGgiFBPLO/HnpN7c1NeAdSXKaNPp06/QDcJq/VIH3KAsG4DMP3+GsNBr\
        lNnGBRZnwHWudQVYEz3WCWj27e9nEHyikkjRPQd+RYcs8vviMcsg1sd5MqFXO6NaQEknAdGJyv51aoVUoUJcZQ97/4+WlzmtEEV6\
        Sapppum7AU0fPyf1rMYbToOzQS1c3RtKvu5za7Ufw0mYkUcRegjJEcPNacIvxVbIMNSTAjn358Orew+rkgA2v9RgLcDXyXLv/IQj\
        /tz0TndtsGBRlsYqJQzirNjQQkG2DJXpfdZyJI3LFo2Z71w1p30fUfU4mk5wVMbbTFEGfKRePlcvGQXufQZ/lLOmLUDFdS0Wo8G/\
        eoqYbJdcB6A/zeIz7+T7Hhq7YLDUF0O6YVkwriqMgNkW3CAp1ntARO2GlNgFMtyBnuaOrYO3scPQvLz8UcXVW56r5lG1IphB1WJp\
        oykx/BVfKMQwOQsYuxl0pwJM3qh+zfQY7pRzC93/7FK6pKIIdQGQaH8pT/550KYJ00ZheV9kCYjZLBGP/BB3lxsSJkLnpokefNbM\
        sZDs74kgt/jCMIIBAgYJKoZIhvcNAQcBoIH0BIHxMIHuMIHrBgsqhkiG9w0BDAoBAqCBtDCBsTAcBgoqhkiG9w0BDAEDMA4ECGhw\
        azLa1r7yAgIIAASBkDK8b8QBUDT/ZP8IRzKMnzHa1AlpdLRc6jFEy4snKXIj14l4yLTtVcOY/S6w4QjoGIvLDNTXmZXkLpKuvFg8\
        GZR+zlxNf2mtCXKJ3D14y+oZXa2CV5r0nLzX6EY8RHw4Y5FMqTOvmziy6Z0ztgsvMjydRKC++yGIJ2kHXLtiZUOLMorvbfFXH2cT\
        yktjEi0cdjElMCMGCSqGSIb3DQEJFTEWBBSiHzNszNleI+4rMj6uooYxGvxXsjAxMCEwCQYFKw4DAhoFAAQUXLrLVSXp0Z/oxQ/C\
        bwGhXm+tM8AECBswCrTW0SHWAgIIAA==
        """

    /// The leaf certificate, base64 DER as in a certificate bundle's `cer`.
    static let leafCertificateBase64 = """
        MIIBpjCCAUygAwIBAgIBAzAKBggqhkjOPQQDAjAnMSUwIwYDVQQDDBxDb250b3NvIEZ1enogSW50ZXJtZWRpYXRlIENBMCAXDTI2\
        MTEyOTA1MTUzM1oYDzIxMjYxMTA1MDUxNTMzWjAeMRwwGgYDVQQDDBN3ZWIuY29udG9zby5leGFtcGxlMFkwEwYHKoZIzj0CAQYI\
        KoZIzj0DAQcDQgAE69zg7GL8njwJIrjgcKZVRzCH8Yzo5RrDVBsbUOPQkDpwcRqq43NjwMa08TPUW9mUYvhiNxSgpySo2sEz22tK\
        z6NwMG4wDAYDVR0TAQH/BAIwADAdBgNVHQ4EFgQUIALpQfzilE9tRjd8JQny15Ac2iIwHwYDVR0jBBgwFoAUQLa+ZdI2cEiGwCE3\
        oG3ukVj7UYIwHgYDVR0RBBcwFYITd2ViLmNvbnRvc28uZXhhbXBsZTAKBggqhkjOPQQDAgNIADBFAiEA5ZeyC7B04TiEHX14WCxP\
        aasvnKRy88Y7VtlkB/aJkqgCIGKL1trO4yq1rW05UZmYk2qTmauOg7Gy1UsdJaV3Iuge
        """

    /// The leaf key (PKCS#8) and the chain leaf → root, as in an `application/x-pem-file` secret.
    static let pemBundle = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgsqsl7cpEmHshFDpv
        118QXPxxYzgWVqdYau2ffPc1b3ShRANCAATr3ODsYvyePAkiuOBwplVHMIfxjOjl
        GsNUGxtQ49CQOnBxGqrjc2PAxrTxM9Rb2ZRi+GI3FKCnJKjawTPba0rP
        -----END PRIVATE KEY-----
        -----BEGIN CERTIFICATE-----
        MIIBpjCCAUygAwIBAgIBAzAKBggqhkjOPQQDAjAnMSUwIwYDVQQDDBxDb250b3Nv
        IEZ1enogSW50ZXJtZWRpYXRlIENBMCAXDTI2MTEyOTA1MTUzM1oYDzIxMjYxMTA1
        MDUxNTMzWjAeMRwwGgYDVQQDDBN3ZWIuY29udG9zby5leGFtcGxlMFkwEwYHKoZI
        zj0CAQYIKoZIzj0DAQcDQgAE69zg7GL8njwJIrjgcKZVRzCH8Yzo5RrDVBsbUOPQ
        kDpwcRqq43NjwMa08TPUW9mUYvhiNxSgpySo2sEz22tKz6NwMG4wDAYDVR0TAQH/
        BAIwADAdBgNVHQ4EFgQUIALpQfzilE9tRjd8JQny15Ac2iIwHwYDVR0jBBgwFoAU
        QLa+ZdI2cEiGwCE3oG3ukVj7UYIwHgYDVR0RBBcwFYITd2ViLmNvbnRvc28uZXhh
        bXBsZTAKBggqhkjOPQQDAgNIADBFAiEA5ZeyC7B04TiEHX14WCxPaasvnKRy88Y7
        VtlkB/aJkqgCIGKL1trO4yq1rW05UZmYk2qTmauOg7Gy1UsdJaV3Iuge
        -----END CERTIFICATE-----
        -----BEGIN CERTIFICATE-----
        MIIBnjCCAUOgAwIBAgIBAjAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRDb250b3Nv
        IEZ1enogUm9vdCBDQTAgFw0yNjExMjkwNTE1MzNaGA8yMTI2MTEwNTA1MTUzM1ow
        JzElMCMGA1UEAwwcQ29udG9zbyBGdXp6IEludGVybWVkaWF0ZSBDQTBZMBMGByqG
        SM49AgEGCCqGSM49AwEHA0IABLAKqqTcf8wAgZCF/ao2fxOSFGiKaQAmdVdnxvOe
        UVQNT/SP4Z2lLwgzYS+6uYibNAWfwBeyPdFn9AIpy59a+LGjZjBkMBIGA1UdEwEB
        /wQIMAYBAf8CAQAwHQYDVR0OBBYEFEC2vmXSNnBIhsAhN6Bt7pFY+1GCMB8GA1Ud
        IwQYMBaAFHS3GewPfGdofHPr9yikDje2gMMBMA4GA1UdDwEB/wQEAwIBBjAKBggq
        hkjOPQQDAgNJADBGAiEAtMVKnmDcIuJYpN4Eggk2mmWoFj1uDi7QA/RsJfFYjxUC
        IQDUxR6CGzkAZoFTEBVWT9mwQtn8XcPbKoRf181lVyZN9Q==
        -----END CERTIFICATE-----
        -----BEGIN CERTIFICATE-----
        MIIBcTCCARegAwIBAgIBATAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRDb250b3Nv
        IEZ1enogUm9vdCBDQTAgFw0yNjExMjkwNTE1MzNaGA8yMTI2MTEwNTA1MTUzM1ow
        HzEdMBsGA1UEAwwUQ29udG9zbyBGdXp6IFJvb3QgQ0EwWTATBgcqhkjOPQIBBggq
        hkjOPQMBBwNCAAQ+O4kAiDLNZ0aMsnZvV8PuedgIPWVrBNrtxVD4zL+JYvjEPw+0
        7Gqx+kp0PhNsZRQredNlh8Y4za/MJaYtBZ2Ko0IwQDAPBgNVHRMBAf8EBTADAQH/
        MB0GA1UdDgQWBBR0txnsD3xnaHxz6/copA43toDDATAOBgNVHQ8BAf8EBAMCAQYw
        CgYIKoZIzj0EAwIDSAAwRQIgdn1ovB/KLhnAJ7y2wOD+1M67VKMstBobYYYiJF3X
        MHMCIQDruGlkyg44anbKfAv4ovzc8EKPWSRJ+lrGPqmTb1DKvw==
        -----END CERTIFICATE-----

        """

    static let rsaModulus = """
        voZ--BVDYOvGfQse-xz3IV4XtBr6A0Kjd4VLqGKybsl1YERrPKznndJNNI8sRjIGYmvcQMEjqLow-bW3JYL7hjNyQbeweG-nT97C\
        0CWCuQoLx4Cq40rbOws442UEhZY4QZSsqQF10RzpSrmGnGaPr8F9dMePviRkwBsHSsRwyt0fLa-wLM908kHoty0kB2fUosJySKjp\
        uD8V2llODjQBdj-7eBrA8E8DrxiB5OqRmhsUerR-m1DmS1tNoM_3txo9ZETuOUjDrp24yOAM8CQfg2rUxLTW6Wmlbowg4Q5u2SKY\
        hGPT1SIfFSVVs8KDwOByXHBfYI2ief2PxoqQovaDvw
        """
    static let rsaExponent = "AQAB"

    static let p256X = "69zg7GL8njwJIrjgcKZVRzCH8Yzo5RrDVBsbUOPQkDo"
    static let p256Y = "cHEaquNzY8DGtPEz1FvZlGL4YjcUoKckqNrBM9trSs8"

    static let p384X = "17pWViJcT57Qb8kLSoPjSVGqTOEXNLHWI3zCKl2Dh4ZjgqqJOtU66h1Gc-3PVDHf"
    static let p384Y = "27Liw8aSfHyhvW-kNVqWNqzU86OZuotM797YDt1QygIEhH5sUZAZV1SyxwUTHH9o"
}
